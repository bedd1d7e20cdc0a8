#!/usr/bin/env bash
# Installs everything ccengine needs on Debian: system packages (apt; chromium and a CJK font
# for the console's browser tests) and the Python
# package with its test tools in ./.venv. Idempotent: a second run only checks.
#   bash scripts/install.sh          install
#   bash scripts/install.sh --run    install, then start the engine on its embedded defaults
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="redis-server redis-sentinel prometheus espeak-ng sox libsox-fmt-base python3-venv chromium fonts-wqy-microhei"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing system packages:$missing"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
# The Debian prometheus and redis packages start system services; ccengine does not need
# them (it starts its own redis-server when none answers), so we leave them as Debian sets them.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.ccengine-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test,bench]'
  touch "$stamp"
fi
echo "ccengine installed in $(pwd)/.venv"
if [ "${1:-}" = "--run" ]; then
  exec .venv/bin/ccengine run
fi
