"""Quality measures and gates: brand colour lock, hand-off drift, bad-output detection.

Pure functions (numpy / OpenCV / colour-science / scikit-image), no Dagster imports; the stage
wiring records their figures as metadata and turns the hard ones into blocking asset checks.
"""
