#!/usr/bin/env bash
# Install what the tests need and run them:
#   bash scripts/test.sh [pytest args]         every test but those marked slow (the quick run)
#   bash scripts/test.sh --all [pytest args]   every test (CI)
# System packages (espeak-ng for OmniWorld speech, ffmpeg, chromium for browser tests) are
# installed with apt when missing and running as root; otherwise the script says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v chromium >/dev/null || need+=(chromium)
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (install them, e.g. sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt -r requirements-test.txt
marks=(-m "not slow")
if [ "${1:-}" = --all ]; then
  shift
  marks=()
fi
exec .venv/bin/python -m pytest ${marks[@]+"${marks[@]}"} "$@"
