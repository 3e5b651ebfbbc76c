# Sourced by run_train_vgg16.sh / run_train_resnet50.sh.
# run_recipe ARCH DATASET GPUS [train.py flags...]: checks data and weights, trains, then evaluates
# (train.py evaluates min-val-error-top1 after training, as released).
declare -A ZOO_FILE=([vgg_gap]=vgg16.npz [resnet]=ImageNet-ResNet50-SE.npz)
declare -A ZOO_URL=([vgg_gap]=http://models.tensorpack.com/Caffe-Converted/vgg16.npz
                    [resnet]=http://models.tensorpack.com/ResNet/ImageNet-ResNet50-SE.npz)
declare -A PREPARE=([CUB]=dataset/prepare_cub.sh [ILSVRC]=dataset/prepare_imagenet.sh)

run_recipe() {
  local arch=$1 dataset=$2 gpus=$3; shift 3
  case "$dataset" in CUB|ILSVRC) ;; *) echo "dataset must be CUB or ILSVRC, got '$dataset'" >&2; return 2;; esac
  local images=dataset/$dataset
  [ "$dataset" = CUB ] && images=dataset/CUB/images
  if [ ! -d "$images" ] || [ -z "$(ls -A "$images" 2>/dev/null)" ]; then
    echo "No $dataset images under $images. Run first: ${PREPARE[$dataset]}" >&2
    return 2
  fi
  local weights=models/pretrained/${ZOO_FILE[$arch]}
  if [ ! -f "$weights" ]; then
    echo "Pretrained weights missing: $weights" >&2
    echo "Download ${ZOO_URL[$arch]} into models/pretrained/" >&2
    return 2
  fi
  source scripts/ensure_venv.sh
  local log_dir=train_log/${dataset}_${arch}_E2Net
  local common=(--dataset_name "$dataset" --arch_name "$arch" --gpu "$gpus" --log_dir "$log_dir" "$@")
  .venv/bin/python train.py "${common[@]}" --pretrained "$weights"
}
