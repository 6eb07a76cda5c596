"""`pulumi preview` of one stack through the Automation API, rendered as a DNS/database report.

    python -m failover.preview --stack dr
    python -m failover.preview --stack dr --active dr --format markdown --output preview-dr.md

With --active, the flip is previewed without touching the project: Pulumi.yaml, the stack
file, __main__.py, components/ (and the Python project files) are copied into a temporary
directory, the copy's stack file gets the new active_region (and, for dr taking over, an
empty replicate_from: the promotion the switch would make), and the preview runs there
against the same stack and backend, with the project's real virtualenv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import yaml
from pulumi.automation.events import EngineEvent

from components.contract import ROLES
from failover import stackconfig
from failover.engine import AutomationEngine, Engine, EngineError, PulumiCliMissing
from failover.preview_render import render_json, render_markdown, summarize

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
EngineFactory = Callable[[Path], Engine]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_CLI = 0, 1, 2, 3
# What the Python language host needs besides the program to find its environment.
_OPTIONAL_FILES = ("pyproject.toml", "uv.lock", ".python-version", "requirements.txt")
_VIRTUALENV_LINE = re.compile(r"^(?P<lead>\s+virtualenv:[ \t]*)(?P<value>.*?)[ \t]*$", re.M)


class PreviewError(RuntimeError):
    """The project could not be prepared for a preview; the message is one line."""


def _pin_virtualenv(pulumi_yaml: Path, project_dir: Path) -> None:
    """Point a relative `runtime.options.virtualenv` of the copy at the project's real one."""
    runtime = (yaml.safe_load(pulumi_yaml.read_text()) or {}).get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    venv = options.get("virtualenv") if isinstance(options, dict) else None
    if not isinstance(venv, str) or Path(venv).is_absolute():
        return
    absolute = str((project_dir / venv).absolute())
    text, count = _VIRTUALENV_LINE.subn(
        lambda m: m["lead"] + json.dumps(absolute), pulumi_yaml.read_text(), count=1
    )
    if count != 1:
        raise PreviewError(f"cannot rewrite runtime.options.virtualenv in {pulumi_yaml}")
    pulumi_yaml.write_text(text)


def flip_updates(stack: str, active: str) -> dict[str, str]:
    """The stack config a switch to `active` would write into `stack`'s file."""
    updates = {"active_region": active}
    if stack == "dr" and active == "dr":
        updates["replicate_from"] = ""  # the switch promotes dr's replica in the same change
    return updates


@contextlib.contextmanager
def flipped_copy(project_dir: Path, stack: str, active: str) -> Iterator[Path]:
    """A temporary copy of the program whose stack file has active_region=`active`."""
    with tempfile.TemporaryDirectory(prefix="llm-preview-") as tmp:
        work = Path(tmp)
        for name in ("Pulumi.yaml", stackconfig.stack_file(project_dir, stack).name, "__main__.py"):
            if not (project_dir / name).is_file():
                raise PreviewError(f"{project_dir / name} does not exist")
            shutil.copy2(project_dir / name, work / name)
        for name in _OPTIONAL_FILES:
            if (project_dir / name).is_file():
                shutil.copy2(project_dir / name, work / name)
        shutil.copytree(
            project_dir / "components",
            work / "components",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        _pin_virtualenv(work / "Pulumi.yaml", project_dir)
        stackconfig.set_values(work, stack, flip_updates(stack, active))
        log.info("previewing a copy with %s at %s", flip_updates(stack, active), work)
        yield work


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m failover.preview",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "exit status: 0 preview ran and the report was written; 1 the preview failed "
            "(the report of what the engine said is still written); 2 usage error; "
            "3 no `pulumi` CLI on PATH"
        ),
    )
    parser.add_argument("--stack", required=True, choices=ROLES)
    parser.add_argument("--active", choices=ROLES, help="preview this active_region (a flip)")
    parser.add_argument("--format", choices=["markdown", "json"], default="markdown")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write here, not to stdout")
    parser.add_argument(
        "--if-changes",
        action="store_true",
        help="write the report only when a DNS object or a database changes, or on errors",
    )
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser


def _preview(
    args: argparse.Namespace, engine: Engine, project_dir: Path, events: list[EngineEvent]
) -> None:
    with contextlib.ExitStack() as stack:
        work_dir = None
        if args.active is not None:
            work_dir = stack.enter_context(flipped_copy(project_dir, args.stack, args.active))
        engine.preview(args.stack, on_event=events.append, work_dir=work_dir)


def _report(args: argparse.Namespace, events: list[EngineEvent]) -> None:
    summary = summarize(events)
    label = args.stack if args.active is None else f"{args.stack} (active_region={args.active})"
    noteworthy = summary.has_dns_changes or summary.databases or summary.errors or summary.failed
    if args.if_changes and not noteworthy:
        print(f"{label}: no DNS or database change; no report written", file=sys.stderr)
        return
    if args.format == "markdown":
        text = render_markdown(summary, label)
    else:
        doc = json.loads(render_json(summary, args.stack))
        doc["active_region"] = args.active  # None: the stack's own config was previewed
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")


def _error(err: Exception) -> None:
    lines = str(err).strip().splitlines() or [type(err).__name__]
    print(f"preview: error: {lines[0]}", file=sys.stderr)


def main(
    argv: Sequence[str] | None = None, engine_factory: EngineFactory = AutomationEngine
) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="preview: %(message)s",
        stream=sys.stderr,
    )
    project_dir = args.project_dir.resolve()
    events: list[EngineEvent] = []
    code = EXIT_OK
    try:
        _preview(args, engine_factory(project_dir), project_dir, events)
    except PulumiCliMissing as err:
        _error(err)
        return EXIT_NO_CLI
    except (EngineError, PreviewError, stackconfig.StackConfigError, OSError) as err:
        _error(err)
        code = EXIT_FAILED
        if not events:
            return code
    try:
        _report(args, events)  # after a failure too: the engine's diagnostics are in it
    except OSError as err:
        _error(err)
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    raise SystemExit(main())
