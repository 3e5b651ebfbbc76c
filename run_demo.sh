#!/usr/bin/env bash
# The main job on a fresh machine: sets up .venv, generates the synthetic set, fine-tunes CAM, ADL
# and E2Net from the committed pretrained ResNet50-SE (models/synthetic_zoo; --from_scratch: from
# random initialisation), evaluates them on the CPU and prints a comparison table. --help lists the options.
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s)
source scripts/ensure_venv.sh
.venv/bin/python -m utils.demo "$@"
echo "[demo] total wall time including set-up: $(( $(date +%s) - start )) s"
