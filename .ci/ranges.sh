#!/usr/bin/env bash
# Run tests against the newest or the oldest dependency releases pyproject.toml allows, on the
# built wheel installed non-editable in a fresh environment that shares only torch with .venv.
#   newest: pip's newest versions within the ranges (torch as in .venv);
#   oldest: the floors pinned in constraints-oldest.txt.
# Each runs the wheel smoke test (.ci/smoke_installed.py), loads a pipeline saved with .venv's
# pinned versions (.ci/cross_version.py), then pytest with the given arguments.
# Usage: .ci/ranges.sh newest|oldest [PYTEST ARGS...]   (needs .venv, see the Makefile)
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:?usage: .ci/ranges.sh newest|oldest [pytest args]}
shift
case "$which" in
  newest) pins=(--upgrade) ;;  # a fresh environment: every dependency at its newest allowed release
  oldest) pins=(-c constraints-oldest.txt) ;;
  *) echo "error: the first argument must be newest or oldest, got '$which'" >&2; exit 2 ;;
esac
env_dir=$(realpath -m ".ci-venvs/$which")
dist=$(mktemp -d)
saved=$(mktemp -d)
trap 'rm -rf "$dist" "$saved"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.venv/bin/python -m pip wheel -q --no-deps --wheel-dir "$dist" .
.venv/bin/python .ci/shared_torch_venv.py "$env_dir"
wheel=$(ls "$dist"/*.whl)
"$env_dir/bin/pip" install -q "${pins[@]}" "$wheel[dev]"
echo "== $which dependency releases =="
"$env_dir/bin/python" .ci/versions.py
# every module imports, every command answers --help, train -> export -> generate (from outside the checkout)
(cd "$saved" && "$env_dir/bin/python" "$OLDPWD/.ci/smoke_installed.py")
.venv/bin/python .ci/cross_version.py save "$saved/pipeline"
"$env_dir/bin/python" .ci/cross_version.py load "$saved/pipeline"
# pytest (not python -m pytest) keeps the checkout off sys.path: the tests import the installed wheel.
"$env_dir/bin/pytest" -q -p no:cacheprovider "$@"
