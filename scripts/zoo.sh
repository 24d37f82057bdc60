#!/usr/bin/env bash
# The main job: for every spec in specs/, check it, print its summary, write the
# generated PyTorch module (verified by running it on a random batch) and its
# diagram. Everything lands in build/zoo/; each model is named with its parameters
# and MACs. scripts/zoo.py does the work (a progress bar on a terminal); arguments
# go to it (e.g. `scripts/zoo.sh specs/gan.model --out /tmp/zoo`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/zoo.py "$@"
