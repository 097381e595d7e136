#!/usr/bin/env bash
# Regenerate the README's wallboard screenshots (docs/wallboard.png, docs/wallboard-unit.png,
# docs/wallboard-phone.png). They are taken by the browser test itself: a real lab (37 units),
# a real `wardwatch run` against it and Debian's headless chromium, with one lab fault in force.
# Needs what scripts/setup-test-env.sh installs (chromium, chromium-driver, selenium, fonts).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs
WARDWATCH_ARTIFACTS=docs python3 -m pytest -q -p no:cacheprovider tests/test_wallboard.py -k wallboard_in_chromium
ls -l docs/wallboard*.png
