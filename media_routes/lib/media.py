"""What stages hand each other: small, picklable references to immutable media in the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class MediaRef:
    """A stored image or video. The bytes live in the media store at ``uri`` and never change.

    ``layers`` holds companion media by name (subject mask, inpaint fix layers, the full-resolution
    outpaint canvas), each itself content-addressed.
    """

    uri: str
    sha256: str
    kind: Literal["image", "video"]
    width: int
    height: int
    layers: dict[str, str] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]
