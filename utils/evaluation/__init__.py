"""Evaluation: CAMs, boxes, metrics, reports and pictures (numpy), and the --evaluate pass."""
