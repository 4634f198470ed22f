#!/usr/bin/env bash
# Create (or reuse) .venv with everything the demo and the tests need. Idempotent: a stamp file
# remembers which pyproject.toml it was built from.
#   TORCH_INSTALL  pip requirement(s) for PyTorch (default "torch torchvision"; CI pins a pair)
#   VENV           where to build it (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_INSTALL=${TORCH_INSTALL:-"torch torchvision"}
stamp="$VENV/.ai-research-template-stamp"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_INSTALL"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "setting up $VENV (PyTorch: $TORCH_INSTALL) ..."
# pip warns about every unusable --find-links location some machines configure: keep the log readable
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
python3 -m venv "$VENV"
quiet "$VENV/bin/python" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086  # TORCH_INSTALL may hold several requirements
quiet "$VENV/bin/python" -m pip install --quiet $TORCH_INSTALL
# The template repository is no package (`packages = []`): a plain install brings its dev tools, with no
# editable hook on the repository root to warn about.
quiet "$VENV/bin/python" -m pip install --quiet ".[dev]"
echo "$want" > "$stamp"
