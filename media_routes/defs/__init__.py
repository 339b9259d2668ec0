"""Dagster wiring: partitions, resources, the six stage assets, jobs."""
