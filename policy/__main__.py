"""The `llm-marketplace-dr` CrossGuard pack: `pulumi preview --policy-pack policy`.

Thin on purpose: the checks live in `policy/dr_policies.py`, which the tests and the failover
switch import without starting a pack (constructing a PolicyPack serves the engine forever).
"""

import sys
from pathlib import Path

# The pack runs from this directory; the checks share `components.contract` with the program.
PROJECT_DIR = str(Path(__file__).resolve().parent.parent)
if PROJECT_DIR not in sys.path:
    sys.path.insert(0, PROJECT_DIR)

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.dr_policies import PACK_NAME, build_policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description=(
        "DR invariants of LLM-Marketplace: encryption at rest and in transit, database "
        "protections and replica keys, the shared DNS names' TTL and health checks, probes and "
        "disruption budgets of the workloads"
    ),
)
