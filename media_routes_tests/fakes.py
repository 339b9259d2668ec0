"""Offline stand-ins shared by the provider tests."""

from __future__ import annotations


class FakeTime:
    """A clock that only moves when something sleeps on it; records every sleep."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now
