#!/usr/bin/env bash
# Sets up everything the tests need (Debian peers, the package with its test
# extras) and runs the whole suite: lint, types, tests. The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
python3 -m ruff check .
python3 -m mypy
python3 -m pytest "$@"
