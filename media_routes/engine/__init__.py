"""The local engine: one pure function per stage, classical image processing (OpenCV, Pillow, numpy).

Offline and deterministic for a given spec and seed. No Dagster imports here: the Dagster wiring
lives in ``media_routes/defs/stages/<stage>.py`` and calls these functions.
"""
