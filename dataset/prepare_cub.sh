#!/usr/bin/env bash
# Extract CUB-200-2011 into dataset/CUB/images/<class dir>/<file>.jpg (idempotent).
#
#   dataset/prepare_cub.sh [CUB_200_2011.tgz] [--dataset-dir DIR] [--labels-dir DIR]
#                          [--regenerate-labels OUT_DIR] [--segmentations segmentations.tgz]
#
# The archive defaults to dataset/CUB_200_2011.tgz.  The official segmentations archive
# (--segmentations, default dataset/segmentations.tgz when present) becomes object masks
# dataset/CUB/masks/<class dir>/<file>.png (gray > 0.5 -> 255, wsolevaluation's rule) for PxAP.  --regenerate-labels rebuilds
# OUT_DIR/CUB/{train,val,words}.txt from the official metadata and reports how many images
# differ from <labels-dir>/CUB (default: the repository's labels/).  Logic: utils/data/prepare.py.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=python3
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m utils.data.prepare cub "$@"
