"""Hosted routes of each stage, one module per stage named after the asset (``hosted/<asset>.py``).

Each function takes the stage's input and a :class:`HostedStage` (the chosen candidate, the clients and
the accounted call), calls the provider and returns the same result type as the local engine function
of that stage (``engine/<asset>.py``), so the stage's quality work (brand lock, drift, checks) is shared.
"""
