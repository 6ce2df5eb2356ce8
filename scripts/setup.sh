#!/usr/bin/env bash
# Sets up .venv with everything Spicy Lentil needs. `--test` adds the test tools and Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The CPU build of torch, pinned and installed first: anything that depends on torch then finds it
# satisfied instead of pulling a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet torch==2.13.0
if [[ "${1:-}" == "--test" ]]; then
    .venv/bin/python -m pip install --quiet -e ".[test,ray]"
    if ! command -v chromium >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        else
            sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        fi
    fi
else
    .venv/bin/python -m pip install --quiet -e .
fi
