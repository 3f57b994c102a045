#!/usr/bin/env bash
# Build the wheel, install it non-editable (exact versions: constraints.txt) into a fresh environment
# that shares only torch with .venv, and smoke-test it from a temporary folder outside the checkout.
# Usage: .ci/wheel_smoke.sh [ENV_DIR]   (default .ci-venvs/wheel; needs .venv, see the Makefile)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
env_dir=$(realpath -m "${1:-.ci-venvs/wheel}")
dist=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$dist" "$work"' EXIT

.venv/bin/python -m pip wheel -q --no-deps --wheel-dir "$dist" .
.venv/bin/python .ci/shared_torch_venv.py "$env_dir"
"$env_dir/bin/pip" install -q -c constraints.txt "$dist"/*.whl
cd "$work"
"$env_dir/bin/python" "$root/.ci/smoke_installed.py"
