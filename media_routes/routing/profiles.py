"""Routing profiles: named YAML files listing, per stage, the candidate routes in order of preference.

Built-in profiles ship in ``media_routes/routes/``; a team adds or overrides profiles in a ``routes/``
folder (``$MEDIA_ROUTES_ROUTES_DIR``, else ``./routes`` when it exists). A campaign picks a profile with
``route.profile`` and may override any stage (``route.motion: kling/kling-v2-5-turbo``).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from media_routes.model_cards import CARDS
from media_routes.stages import STAGES

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "routes"
ENV_ROUTES_DIR = "MEDIA_ROUTES_ROUTES_DIR"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# What each intent means for the router. ``allow_reinterpretation`` False rejects a model on a stage its
# card says it may re-interpret (the base layer must survive: brand-safe).
INTENTS: dict[str, dict[str, object]] = {
    "brand-safe": {"allow_reinterpretation": False, "meaning": "preserve the base layer exactly"},
    "high-drama": {"allow_reinterpretation": True, "meaning": "allow re-interpretation for bolder looks and moves"},
    "soft-architectural": {"allow_reinterpretation": False, "meaning": "soft light, straight lines kept"},
    "high-contrast-fashion": {"allow_reinterpretation": False, "meaning": "hard light, coloured deep shadows kept"},
}


class ProfileError(ValueError):
    """A profile that cannot be used, with the file and field."""


RouteList = Annotated[list[str], Field(min_length=1)]


class RouteProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    path: str = ""
    description: str
    intent: Literal["brand-safe", "high-drama", "soft-architectural", "high-contrast-fashion"]
    reroute_on_block: bool = Field(False, description="a content block moves to the next candidate")
    chain_video: bool = Field(True, description="make a longer video than one call allows by chaining calls")
    prefer: Literal["order", "cost"] = "order"
    prompt_style: str = ""
    stages: dict[str, RouteList]

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for stage, routes in v.items():
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
            for r in routes:
                if r not in CARDS:
                    raise ValueError(f"{stage}: unknown route {r!r}; known routes: {', '.join(CARDS)}")
                if stage not in CARDS[r].stages:
                    raise ValueError(f"{stage}: route {r!r} cannot run this stage")
            if len(set(routes)) != len(routes):
                raise ValueError(f"{stage}: a route is listed twice")
        missing = [s for s in STAGES if s not in v]
        if missing:
            raise ValueError(f"no candidates for {', '.join(missing)}")
        return v

    @property
    def allow_reinterpretation(self) -> bool:
        return bool(INTENTS[self.intent]["allow_reinterpretation"])


def routes_dirs() -> list[Path]:
    """Where profiles are looked up, later folders overriding earlier ones."""
    dirs = [BUILTIN_DIR]
    if os.environ.get(ENV_ROUTES_DIR):
        dirs.append(Path(os.environ[ENV_ROUTES_DIR]).expanduser().resolve())
    elif (Path.cwd() / "routes").is_dir():
        dirs.append((Path.cwd() / "routes").resolve())
    return dirs


def load_profile_file(path: Path) -> RouteProfile:
    name = path.stem
    if not NAME_RE.fullmatch(name):
        raise ProfileError(f"{path}: profile file names are slugs ('brand-safe.yaml'), got {path.name!r}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile is a mapping")
    try:
        return RouteProfile(**data, name=name, path=str(path))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ProfileError(f"{path}: {problems}") from None


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int) -> RouteProfile:
    return load_profile_file(Path(path))


def available_profiles() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in routes_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.yaml")):
                found[p.stem] = p
    return found


def load_profile(name: str) -> RouteProfile:
    """The named profile (a later routes folder overrides a built-in one), or a ProfileError."""
    profiles = available_profiles()
    if name not in profiles:
        where = ", ".join(str(d) for d in routes_dirs())
        raise ProfileError(f"route.profile {name!r} not found in {where} (available: {', '.join(profiles)})")
    path = profiles[name]
    return _load_cached(str(path), path.stat().st_mtime_ns)
