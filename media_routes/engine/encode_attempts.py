"""Keep the best of a few encodes: encode, measure what the decoder gives back, adjust the targets, encode again.

Used by motion's chroma pre-compensation (the targets are per-frame brand palettes, the measure the worst brand
CIEDE2000 of the decoded video); generic over what the targets and the measurements are, so it is tested without
video and without the brand measure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

P = TypeVar("P")  # the encode's targets
R = TypeVar("R")  # what was measured on the decoded result


@dataclass(frozen=True)
class Encode(Generic[R]):
    path: Path  # the encoded file (deleted when a better encode replaces it)
    worst: float  # the figure to minimise
    measured: R


def best_encode(
    encode: Callable[[P, int], Encode[R]],
    first: P,
    adjust: Callable[[P, Encode[R]], P],
    *,
    good_enough: float,
    extra_attempts: int = 2,
    enabled: bool = True,
) -> tuple[Encode[R], list[float]]:
    """Encode with ``first``; while the best so far is worse than ``good_enough`` (and ``enabled``), encode again
    with ``adjust(last targets, best encode)``, up to ``extra_attempts`` more times. Returns the best encode (the
    others' files are deleted) and the worst figure of every encode in order."""
    best = encode(first, 0)
    worst_by_attempt = [best.worst]
    targets = first
    for attempt in range(1, extra_attempts + 1):
        if not enabled or worst_by_attempt[-1] <= good_enough:
            break
        targets = adjust(targets, best)
        candidate = encode(targets, attempt)
        worst_by_attempt.append(candidate.worst)
        if candidate.worst < min(worst_by_attempt[:-1]):
            best.path.unlink(missing_ok=True)
            best = candidate
        else:
            candidate.path.unlink(missing_ok=True)
    return best, worst_by_attempt
