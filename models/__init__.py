"""tensorpack graphs of E2Net and its baselines (CAM, ADL)."""
