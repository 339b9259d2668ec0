"""Local stand-ins of the documented hosted-provider contracts (Gemini/Veo, fal, Kling), as HTTP servers on
127.0.0.1 over real sockets: for the tests, the rehearsal (``deploy/rehearse.py``) and offline demos, never
used in production. Shapes follow shared/reference/provider-contracts.md; each module says which sections.
"""
