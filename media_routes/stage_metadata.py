"""The metadata of a stage materialization that code reads back, defined once (issue #12).

Every stage writes these keys (``media_routes/defs/stages/stage_io.py``) and every reader (lineage and ``trace``,
automation, approvals, review, estimate, export) reads them through :class:`StageMetadata`, so a renamed key fails
at once in the tests instead of silently reading ``None``. The keys are what the Dagster UI shows; other metadata a
stage writes for people to look at (previews, heatmaps, tables) is not read back and is not listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


def _key(name: str) -> Any:
    return field(default=None, metadata={"key": name})


@dataclass(frozen=True)
class StageMetadata:
    provider: str | None = _key("provider")
    model: str | None = _key("model")
    seed: int | None = _key("seed")
    seed_source: str | None = _key("seed_source")
    route: dict[str, Any] | None = _key("route")  # the RouteDecision as JSON: plan, attempts, calls
    credits: float | None = _key("credits")
    cache_hits: int | None = _key("cache_hits")
    credits_estimate: float | None = _key("credits_estimate")
    input_hashes: dict[str, str] | None = _key("input_hashes")
    output_hash: str | None = _key("output_hash")
    width: int | None = _key("width")
    height: int | None = _key("height")
    # not "path": the IO manager writes its own "path" (the pickled reference) and would win
    media_path: str | None = _key("media_path")
    uri: str | None = _key("dagster/uri")
    layers: dict[str, str] | None = _key("layers")
    metrics: dict[str, Any] | None = _key("metrics")
    checks: dict[str, str] | None = _key("checks")  # check name -> "passed" or "FAILED: ..."
    spec_slice: str | None = _key("spec_slice")  # hash of the spec fields and files the stage read
    drift_heatmap_path: str | None = _key("drift_heatmap_path")
    duration_s: float | None = _key("duration_s")  # video only
    compute_s: float | None = _key("compute_s")

    @classmethod
    def key(cls, name: str) -> str:
        """The metadata key of a field: ``StageMetadata.key("uri") == "dagster/uri"``."""
        return _KEYS[name]

    @classmethod
    def read(cls, metadata: Mapping[str, Any] | None) -> StageMetadata:
        """From a materialization's metadata (``MetadataValue`` objects or plain values); absent keys are None."""
        metadata = metadata or {}
        values = {}
        for name, key in _KEYS.items():
            value = metadata.get(key)
            values[name] = getattr(value, "value", value)
        return cls(**values)


_KEYS: dict[str, str] = {f.name: f.metadata["key"] for f in fields(StageMetadata)}
