"""tensorpack graphs of E2Net and its baselines (CAM, ADL, and HaS, ACoL, SPG, CutMix, FSL as
wsolevaluation defines them).

``spec.py`` is plain data; ``methods/`` holds one record per method (what it adds to the CAM
graph) and the registry naming them; every graph module imports ``utils.compat`` before tensorpack.
"""
