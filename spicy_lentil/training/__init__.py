"""Layer 3, training: data, the recipe, the trainer, encoder tuning, calibration and evaluation.

Imports the corpus index, the network and the shared bottom, never the front ends.
"""
