"""tensorpack graphs of E2Net and its baselines (CAM, ADL).

Importing the package brings TensorFlow up through ``utils.compat`` first, so that
tensorpack's layers see the legacy Keras they need.
"""
from utils import compat  # noqa: F401
