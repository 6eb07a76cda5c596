"""Bad config fails before any resource is declared, naming the key, value and what is allowed."""

from __future__ import annotations

import pytest

from failover.programeval import EvaluationError, evaluate
from tests.conftest import CANARY_PASSWORD, PROJECT_DIR, Evaluator


@pytest.mark.parametrize(
    ("stack", "overrides", "message"),
    [
        (
            "dr",
            {"active_region": "west"},
            "config active_region='west' is not allowed: one of 'primary', 'dr'",
        ),
        (
            "primary",
            {"role": "dr"},
            "config role='dr' is not allowed: the stack's own name ('primary')",
        ),
        (
            "dr",
            {"aws:region": "mars-north-1"},
            "config aws:region='mars-north-1' is not allowed: a known AWS region",
        ),
        (
            "dr",
            {"aws:region": "us-east-1"},
            "config aws:region='us-east-1' is not allowed: 'us-west-2' for the dr stack",
        ),
        (
            "dr",
            {"vpc_cidr_dr": "10.10.128.0/17"},
            "config vpc_cidr_dr='10.10.128.0/17' is not allowed: a block that does not overlap vpc_cidr_primary='10.10.0.0/16'",
        ),
        (
            "dr",
            {"replicate_from": "dr"},
            "config replicate_from='dr' is not allowed: empty (writer) or the other stack's name ('primary')",
        ),
        (
            "primary",
            {"db_backup_retention_days": "1"},
            "config db_backup_retention_days=1 is not allowed: an integer >= 7",
        ),
        (
            "primary",
            {"replicate_from": "dr"},
            "config replicate_from='dr' is not allowed: empty while db_generation=1",
        ),
        (
            "dr",
            {"hosted_zone_id": ""},
            "config hosted_zone_id=None is not allowed: the Route53 hosted zone id",
        ),
    ],
)
def test_bad_config_is_refused_with_the_key_value_and_allowed(
    stack: str, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(EvaluationError) as err:
        evaluate(PROJECT_DIR, stack, {"db_password": CANARY_PASSWORD, **overrides})
    assert message in str(err.value)


def test_missing_db_password_secret_is_refused(tmp_path: object) -> None:
    from pathlib import Path

    from components.settings import ConfigError, validate

    config = {"role": "dr", "active_region": "primary", "hosted_zone_id": "Z1"}
    with pytest.raises(ConfigError) as err:
        validate(stack="dr", get=config.get, region="us-west-2", db_password=None)
    assert "config db_password=None is not allowed: a secret" in str(err.value)
    assert isinstance(Path, type)


def test_good_config_evaluates(evaluated: Evaluator) -> None:
    assert evaluated("primary").outputs["role"] == "primary"
