"""Routing: model cards, profiles, the router, fallbacks and route health (docs/routing.md)."""
