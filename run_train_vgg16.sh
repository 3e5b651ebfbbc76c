#!/usr/bin/env bash
# Released E2Net recipe with VGG16-GAP: MAE after pool3, pool4, conv5_3 + three OSE heads;
# 250 epochs on CUB (100 on ILSVRC), then evaluation of the min-val-error-top1 checkpoint.
#   ./run_train_vgg16.sh [CUB|ILSVRC] [GPU list, e.g. 0,1]  ("" = CPU)   (extra train.py flags may follow)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/run_recipe.sh
DATASET=${1:-CUB}; GPUS=${2-0}; shift $(( $# < 2 ? $# : 2 ))
run_recipe vgg_gap "$DATASET" "$GPUS" \
  --method_name E2Net --gating_position 3 4 53 --aae_threshold 0.5 --base_lr 0.01 --batch 32 "$@"
