"""Training: the training loop, trainers (multi-GPU, distributed), weight loading."""
