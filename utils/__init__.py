"""Numpy/OpenCV helpers, configuration and data for the E2Net reproduction."""
