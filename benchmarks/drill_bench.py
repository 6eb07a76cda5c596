"""Planned and unplanned drills at two write rates: RTO, RPO and the switch's own overhead.

Overhead is the switch's wall time minus the time it spent waiting on the lab's databases,
DNS and AWS stand-ins (promotion, replay, Route53 calls, health checks).
Run: uv run python benchmarks/drill_bench.py [--rates 20 100] [--duration 3]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from failover import drill


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[20.0, 100.0])
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    print(
        f"{'mode':<10} {'rate/s':>7} {'RTO s':>7} {'RPO':>5} {'switch s':>9} {'waited s':>9} {'overhead s':>11} {'acked':>6}"
    )
    worst = 0
    for mode in ("planned", "unplanned"):
        for rate in args.rates:
            r = drill.drill(mode, rate, args.duration, None, 0.0, 300.0, io.StringIO())
            worst = max(worst, r.exit_code)
            print(f"{mode:<10} {rate:>7.0f} {r.rto_seconds:>7.2f} {r.rpo_lost:>5} {r.switch_seconds:>9.2f} "
                  f"{r.waited_seconds:>9.2f} {r.overhead_seconds:>11.2f} {r.acknowledged:>6}")  # fmt: skip
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
