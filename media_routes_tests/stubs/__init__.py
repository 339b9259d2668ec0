"""Local stub servers of hosted providers, for tests that talk HTTP over real sockets on 127.0.0.1."""
