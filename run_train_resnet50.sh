#!/usr/bin/env bash
# Released E2Net recipe with ResNet50-SE: MAE at 31 41 5 + three OSE heads with BN;
# 100 epochs, then evaluation of the min-val-error-top1 checkpoint.
#   ./run_train_resnet50.sh [CUB|ILSVRC] [GPU list, e.g. 0,1,2,3]  ("" = CPU)   (extra train.py flags may follow)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/run_recipe.sh
DATASET=${1:-CUB}; GPUS=${2-0}; shift $(( $# < 2 ? $# : 2 ))
run_recipe resnet "$DATASET" "$GPUS" \
  --method_name E2Net --gating_position 31 41 5 --use_bn 1 --aae_threshold 0.5 --base_lr 0.01 --batch 32 "$@"
