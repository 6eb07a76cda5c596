"""The drill: the real switch against a loopback lab, under write load."""

from __future__ import annotations

import io

import pytest

from failover import drill


def run(**kwargs: object) -> drill.DrillResult:
    args: dict[str, object] = {
        "mode": "planned", "rate": 40.0, "duration": 2.0, "crash_at": None,
        "lag_seconds": 0.0, "max_lag": 300.0, "out": io.StringIO(),
    }  # fmt: skip
    args.update(kwargs)
    return drill.drill(**args)  # type: ignore[arg-type]


def test_planned_drill_loses_nothing_and_has_no_split_brain() -> None:
    result = run()
    assert result.violations == []
    assert result.switch_exit == 0 and result.exit_code == 0
    assert result.rpo_lost == 0
    assert result.split_brain == []
    assert result.promotions == 1
    assert result.acknowledged > 0 and result.attempted >= result.acknowledged
    assert set(result.phases) >= {"preflight", "fence", "promote", "flip", "validate"}


def test_unplanned_drill_with_a_lagging_replica_counts_the_lost_commits_exactly() -> None:
    result = run(mode="unplanned", lag_seconds=1.5)
    assert result.switch_exit == 0, result.violations
    assert result.expected_lost is not None and result.expected_lost > 0
    # Every commit acknowledged while the replica was cut off is lost, and nothing else.
    assert result.rpo_lost == result.expected_lost
    assert result.split_brain == []
    assert result.promotions == 1
    assert "fence" not in result.phases


@pytest.mark.parametrize("phase", ["preflight", "fence", "promote", "flip", "validate"])
def test_a_crash_at_any_phase_boundary_is_finished_by_a_rerun(phase: str) -> None:
    result = run(crash_at=phase)
    assert result.reruns == 1
    assert result.switch_exit == 0, result.violations
    assert result.promotions == 1
    assert result.rpo_lost == 0 and result.split_brain == []


def test_a_drill_refused_by_preflight_leaves_the_writer_writable() -> None:
    result = run(lag_seconds=2.0, max_lag=0.5)
    assert result.switch_exit == 4
    assert result.exit_code == 4
    assert result.promotions == 0
    # The drill checks the old writer's read-only default; a violation would be listed.
    assert result.violations == []
