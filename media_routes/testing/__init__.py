"""Test doubles of media_routes, importable from the package: for the test suite, the one-machine production
rehearsal (``deploy/rehearse.py``) and offline demos. Never used in production.

* :mod:`media_routes.testing.stubs`: local stand-ins (HTTP servers on 127.0.0.1) of the documented contracts
  of the hosted providers (Gemini/Veo, fal, Kling; shared/reference/provider-contracts.md);
* :mod:`media_routes.testing.campaigns`: small, fast copies of the example campaigns of the repository's
  ``campaigns/`` folder (needs a source checkout or an editable install);
* :mod:`media_routes.testing.rehearsal`: the rehearsal of the production topology on one machine.

Nothing in the pipeline, the CLI or the Dagster definitions imports this package.
"""
