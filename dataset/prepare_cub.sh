#!/usr/bin/env bash
# Extract CUB-200-2011 into dataset/CUB/images/<class dir>/<file>.jpg (idempotent).
#
#   dataset/prepare_cub.sh [CUB_200_2011.tgz] [--dataset-dir DIR] [--labels-dir DIR]
#                          [--regenerate-labels OUT_DIR]
#
# The archive defaults to dataset/CUB_200_2011.tgz.  --regenerate-labels rebuilds
# OUT_DIR/CUB/{train,val,words}.txt from the official metadata and reports how many images
# differ from <labels-dir>/CUB (default: the repository's labels/).  Logic: utils/data/prepare.py.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=python3
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m utils.data.prepare cub "$@"
