"""Shared helpers with no Dagster wiring: image I/O, hashing, media storage."""
