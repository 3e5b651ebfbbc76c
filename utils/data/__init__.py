"""Data: label lists, dataflows and augmentation, the synthetic set, data preparation."""
