"""tensorpack graphs of E2Net and its baselines (CAM, ADL).

``spec.py`` is plain data; every graph module imports ``utils.compat`` before tensorpack.
"""
