"""Hosted-provider adapters (issue #3): typed errors, retry policy and HTTP clients.

Nothing here is wired into the Dagster stages yet; the adapters are plain synchronous httpx clients
that a route will call. See docs/providers.md.
"""
