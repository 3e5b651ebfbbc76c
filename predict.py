#!/usr/bin/env python
"""Classes, CAM and box of a trained run on your own images.

Examples:
  python predict.py --log_dir train_log/CUB_vgg_gap_E2Net photos/ --out predictions
  python predict.py --load train_log/run/model-5000 a.jpg b.png --out out --class 3 --view centre_crop
Run ``python predict.py --help`` for every flag; the outputs are described in
``utils/evaluation/predict.py``.
"""
import sys

from utils import compat  # noqa: F401  (first: TensorFlow set-up for the whole program)
from utils.evaluation.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
