#!/usr/bin/env bash
# Extract ILSVRC 2012 into dataset/ILSVRC/train/<wnid>/*.JPEG and dataset/ILSVRC/val/*.JPEG,
# then write labels/ILSVRC/train.txt (train/<wnid>/<file>.JPEG <class in wnids.txt order>).
#
#   dataset/prepare_imagenet.sh [--train-tar ILSVRC2012_img_train.tar]
#                               [--val-tar ILSVRC2012_img_val.tar]
#                               [--dataset-dir DIR] [--labels-dir DIR]
#
# Archives default to dataset/ILSVRC2012_img_{train,val}.tar.  Idempotent: finished class
# folders are skipped.  Logic: utils/data/prepare.py.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=python3
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m utils.data.prepare imagenet "$@"
