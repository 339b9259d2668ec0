"""Campaign specs: one YAML file per campaign, ``campaigns/<id>/campaign.yaml``, validated by typed models.

Validation happens in two passes:

1. the YAML is parsed against the pydantic models below (unknown fields, types, hex codes, formats);
2. :func:`check_campaign_files` checks what needs the campaign folder: asset files exist, stay inside the
   folder, are readable images of a sane size, and masks lie inside the base canvas.

Every problem is reported as ``file: field: reason``; :class:`SpecError` carries all of them.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from media_routes.formats import FORMAT_KEYS, KLevel
from media_routes.lib import text
from media_routes.lib.imaging import ImageLoadError, load_user_image
from media_routes.model_cards import CARDS
from media_routes.stages import STAGES

SPEC_FILENAME = "campaign.yaml"
MAX_SPEC_BYTES = 1_000_000  # a spec is a page of YAML; anything larger is refused before it is parsed
MAX_YAML_DEPTH = 32  # nesting levels; the models need 6
MAX_LIST_ITEMS = 10_000  # items in any one list (polygon points, fixes, layers, ...)
MAX_STRING_CHARS = 20_000  # characters in any one string
MAX_PROBLEMS_SHOWN = 20  # problems listed per spec (then "... and N more")
MAX_ITEMS_SHOWN = 5  # offending items listed per problem (then the count)
BASE_LONG_SIDE = 1024  # the "1K" blueprint
HEX_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
SEED_LIMIT = 2**31  # seeds are 0 <= seed < SEED_LIMIT (the engines and the hosted contracts take int32)
BUILTIN_FONTS = {"DejaVuSans-Bold", "DejaVuSans", "DejaVuSerif"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ColorRef = Annotated[str, Field(description="a palette name or a #RRGGBB hex code")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
ShapeCoord = Annotated[float, Field(ge=-1.0, le=2.0, description="fraction of the canvas; a shape may reach past it")]


class Texture(_Model):
    kind: Literal["noise", "grain", "concrete", "none"] = "noise"
    strength: Annotated[float, Field(ge=0.0, le=0.5)] = 0.04
    scale: Annotated[float, Field(gt=0.0, le=64.0)] = 4.0


class Background(_Model):
    style: Literal["gradient", "studio", "sky"] = "gradient"
    colors: Annotated[list[ColorRef], Field(min_length=1, max_length=4)]
    texture: Texture = Texture()


class KeyLight(_Model):
    direction_deg: Annotated[float, Field(ge=-360.0, le=360.0)] = Field(
        135.0, description="where the light comes from, degrees, 0 = right, 90 = top"
    )
    intensity: Annotated[float, Field(ge=0.0, le=2.0)] = 0.5
    kelvin: Annotated[float, Field(ge=2000, le=12000)] = 5600
    ambient: Annotated[float, Field(ge=0.0, le=1.0)] = 0.35


class Shadow(_Model):
    opacity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    blur: Annotated[float, Field(ge=0.0, le=0.2)] = 0.02  # fraction of canvas long side
    distance: Annotated[float, Field(ge=0.0, le=0.2)] = 0.025  # fraction, away from the key light


class ImageLayer(_Model):
    kind: Literal["image"]
    name: str
    source: str = Field(description="RGBA cutout, path relative to the campaign folder")
    center: tuple[Fraction, Fraction] = (0.5, 0.5)
    height: Annotated[float, Field(gt=0.0, le=2.0)] = 0.5
    shadow: Shadow | None = Shadow()
    subject: bool = True
    protect: bool = Field(
        False,
        description="a product: its colours, as the source asset has them, are held at every stage and frame "
        "(quality.product_delta_e_max)",
    )


class ShapeLayer(_Model):
    kind: Literal["shape"]
    name: str
    shape: Literal["rect", "ellipse", "polygon"]
    points: Annotated[list[tuple[ShapeCoord, ShapeCoord]], Field(min_length=2)] = Field(
        description="fractions of the canvas: rect/ellipse take two corners, polygon three or more points"
    )
    color: ColorRef
    shade: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.0  # vertical light falloff across the shape
    shadow: Shadow | None = None
    subject: bool = False
    protect: bool = Field(
        False,
        description="a product: its colours, as the source asset has them, are held at every stage and frame "
        "(quality.product_delta_e_max)",
    )

    @model_validator(mode="after")
    def _check_points(self) -> ShapeLayer:
        if self.shape == "polygon" and len(self.points) < 3:
            raise ValueError("a polygon needs at least 3 points")
        if self.shape in ("rect", "ellipse") and len(self.points) != 2:
            raise ValueError(f"a {self.shape} takes exactly 2 points (opposite corners)")
        return self


Layer = Annotated[ImageLayer | ShapeLayer, Field(discriminator="kind")]


class Headline(_Model):
    text: Annotated[str, Field(min_length=1, max_length=120, description="one line of text")]
    font: str = Field("builtin:DejaVuSans-Bold", description="builtin:<name> or a .ttf/.otf in the campaign")
    color: ColorRef
    size: Annotated[float, Field(gt=0.0, le=0.4)] = 0.08  # cap height as a fraction of canvas height
    center: tuple[Fraction, Fraction] = (0.5, 0.12)
    max_width: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    tracking: Annotated[float, Field(ge=-0.1, le=0.5)] = 0.0

    @field_validator("text")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if "\n" in v or "\r" in v:
            raise ValueError("a headline is one line: line breaks are not supported")
        if not v.strip():
            raise ValueError("a headline needs visible text")
        return v


class Scene(_Model):
    aspect: str = Field("1:1", description="base canvas aspect W:H; the long side is 1024 px")
    background: Background
    key_light: KeyLight = KeyLight()
    layers: list[Layer] = []
    headline: Headline | None = None

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str) -> str:
        m = re.fullmatch(r"(\d{1,2}):(\d{1,2})", v)
        if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
            raise ValueError(f"aspect must look like '4:5', got {v!r}")
        w, h = int(m.group(1)), int(m.group(2))
        if not 0.25 <= w / h <= 4:
            raise ValueError(f"aspect {v} is outside 1:4 .. 4:1")
        return v

    @property
    def canvas_size(self) -> tuple[int, int]:
        w, h = (int(x) for x in self.aspect.split(":"))
        if w >= h:
            return BASE_LONG_SIDE, round(BASE_LONG_SIDE * h / w)
        return round(BASE_LONG_SIDE * w / h), BASE_LONG_SIDE


class LightingTolerance(_Model):
    exposure: Annotated[float, Field(gt=0)] = 2.0
    white_balance_k: Annotated[float, Field(gt=0)] = 200.0
    contrast: Annotated[float, Field(gt=0)] = 3.0


class LightingTargets(_Model):
    exposure: Annotated[float, Field(ge=5, le=95)] = Field(
        50.0, description="target median CIE L* of the frame (0..100)"
    )
    white_balance_k: Annotated[float, Field(ge=2500, le=10000)] = 5600
    contrast: Annotated[float, Field(ge=5, le=95)] = Field(
        60.0, description="target L* spread between the 5th and 95th percentiles"
    )
    tolerance: LightingTolerance = LightingTolerance()
    max_iterations: Annotated[int, Field(ge=1, le=20)] = 6


class MaskSpec(_Model):
    rect: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height in base pixels")
    polygon: Annotated[list[tuple[int, int]], Field(min_length=3)] | None = None
    png: str | None = Field(None, description="greyscale mask, same size as the base canvas")

    @model_validator(mode="after")
    def _exactly_one(self) -> MaskSpec:
        given = [k for k in ("rect", "polygon", "png") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of rect, polygon or png (got {given or 'none'})")
        if self.rect is not None and (self.rect[2] <= 0 or self.rect[3] <= 0):
            raise ValueError("rect width and height must be positive")
        return self


class Fix(_Model):
    name: str
    mask: MaskSpec
    action: Literal["remove", "replace", "instruct"]
    patch: str | None = Field(None, description="for replace: image placed over the mask's bounding box")
    instruction: str | None = Field(None, description="for instruct: an edit instruction for a hosted model")
    feather: Annotated[int, Field(ge=0, le=64)] = 4

    @model_validator(mode="after")
    def _action_fields(self) -> Fix:
        if self.action == "replace" and not self.patch:
            raise ValueError("action 'replace' needs a patch image")
        if self.action == "instruct" and not self.instruction:
            raise ValueError("action 'instruct' needs an instruction")
        if self.action != "replace" and self.patch:
            raise ValueError(f"patch is only used with action 'replace', not {self.action!r}")
        return self


class Upscale(_Model):
    target: KLevel = "4K"
    detail: Annotated[float, Field(ge=0.0, le=2.0)] = 0.6
    skin_guard: bool = True


class Outpaint(_Model):
    anchor: tuple[Fraction, Fraction] = Field(
        (0.5, 0.5), description="where the original sits on the expanded canvas (0.5, 0.5 = centred)"
    )


class Motion(_Model):
    duration_s: Annotated[float, Field(gt=0, le=30)] = 10.0
    fps: Annotated[int, Field(ge=1, le=60)] = 24
    camera: Literal["push_in", "pull_out", "pan_left", "pan_right", "parallax"] = "push_in"
    strength: Annotated[float, Field(gt=0, le=0.5)] = 0.08
    preservation: Literal["strict", "loose"] = "strict"
    crf: Annotated[int, Field(ge=0, le=51)] = 20


class Refresh(_Model):
    """A scheduled refresh of the campaign (the ``campaign_refresh`` schedule, docs/operations.md)."""

    cron: str = Field(description="cron expression, e.g. '0 6 * * 1' for Mondays at 06:00")
    timezone: str = Field("UTC", description="IANA time zone the cron expression is read in")
    new_seed: bool = Field(
        False,
        description="re-roll base_composition with a seed derived from the tick time (fresh variations); "
        "false: re-make the stills from the spec as it is (picks up edited source files)",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(v):
            raise ValueError(f"{v!r} is not a valid cron expression (five fields: minute hour day month weekday)")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as 'Europe/Paris')") from None
        return v


class Quality(_Model):
    """Thresholds of the quality gates (see docs/quality.md)."""

    brand_delta_e_max: Annotated[float, Field(gt=0, le=10)] = Field(
        1.0,
        description="max CIEDE2000 of a brand colour's stroke-interior mean after correction (ERROR, blocking)",
    )
    brand_p95_max: Annotated[float, Field(gt=0, le=20)] = Field(
        2.0,
        description="max per-pixel p95 CIEDE2000 inside a brand colour's stroke interior (ERROR, blocking): a halo "
        "and an undershoot across a stroke cancel in its mean, not in its p95",
    )
    product_delta_e_max: Annotated[float, Field(gt=0, le=20)] = Field(
        2.0,
        description="max region-mean CIEDE2000 of each swatch of a protected layer (protect: true) from its colour "
        "in the source asset (ERROR, blocking)",
    )
    brand_lock: list[str] = Field(
        [], description="palette colours also located by colour in the base (headline and patches always are)"
    )
    drift_delta_e_warn: Annotated[float, Field(gt=0)] = Field(
        10.0, description="grid CIEDE2000 drift against the stage input above which a WARN is raised"
    )
    shadow_chroma_min: Annotated[float, Field(ge=0, le=1)] = Field(
        0.6, description="share of deep-shadow chroma a stage must keep (the blue-shadows-to-black case; WARN)"
    )
    ssim_outside_min: Annotated[float, Field(ge=0, le=1)] = Field(
        0.9, description="SSIM outside the regions a stage may change, against its input (WARN)"
    )
    seam_delta_e_warn: Annotated[float, Field(gt=0)] = Field(
        3.0, description="CIEDE2000 between the strips on each side of an outpaint seam above which it warns"
    )
    seam_gradient_ratio_warn: Annotated[float, Field(gt=0)] = Field(
        3.0, description="luma step across an outpaint seam vs the original's texture next to it (WARN)"
    )
    skin_hf_ratio_max: Annotated[float, Field(gt=0)] = Field(
        1.3, description="high-frequency energy on skin after upscaling vs a plain Lanczos reference (WARN)"
    )
    halo_overshoot_max: Annotated[float, Field(gt=0)] = Field(
        4.0, description="mean luma overshoot at edges beyond the Lanczos reference's local range, levels (WARN)"
    )
    frame_ssim_min: Annotated[float, Field(ge=0, le=1)] = Field(
        0.5, description="lowest SSIM allowed between consecutive video frames (WARN; a cut or glitch)"
    )
    bridge_stages: list[Literal["k_upscale", "aspect_outpaint"]] = Field(
        ["k_upscale", "aspect_outpaint"],
        description="stages where drift over tolerance triggers the low-frequency bridge pass toward the input",
    )
    bridge_strength: Annotated[float, Field(ge=0, le=1)] = 0.8


class Budget(_Model):
    """Credit budget of the campaign: a hosted call that would take the campaign's spend over it is refused
    before it is made (cache hits cost nothing and are always allowed)."""

    credits: Annotated[float, Field(ge=0)] = Field(description="credits (1 credit = usd_per_credit in prices.yaml)")


def _route_id(v: str | None) -> str | None:
    if v is None:
        return None
    if v not in CARDS:
        raise ValueError(f"unknown route {v!r} (known routes: {', '.join(CARDS)})")
    return v


class Route(_Model):
    """The routing profile (``media_routes/routes/<profile>.yaml`` or a team ``routes/`` folder) and
    optional per-stage overrides: a route id (``local``, ``google/gemini-3-pro-image-preview``, ...) that
    replaces the profile's candidates for that stage."""

    profile: str = Field("local", description="name of a routing profile")
    base_composition: str | None = None
    lighting_iteration: str | None = None
    inpaint_fix: str | None = None
    k_upscale: str | None = None
    aspect_outpaint: str | None = None
    motion: str | None = None

    @field_validator(*STAGES)
    @classmethod
    def _known_route(cls, v: str | None) -> str | None:
        return _route_id(v)

    def override_for(self, stage: str) -> str | None:
        return getattr(self, stage)


class CampaignSpec(_Model):
    id: str
    brief: Annotated[str, Field(min_length=1)]
    seed: Annotated[int, Field(ge=0, lt=SEED_LIMIT)] = 0
    palette: Annotated[dict[str, str], Field(min_length=1)]
    scene: Scene
    route: Route = Route()
    lighting: LightingTargets = LightingTargets()
    fixes: list[Fix] = []
    upscale: Upscale = Upscale()
    formats: Annotated[list[str], Field(min_length=1)] = ["1x1"]
    outpaint: Outpaint = Outpaint()
    motion: Motion = Motion()
    approval: Literal["auto", "required"] = Field(
        "auto", description="'required': motion for a format runs only after its still is approved"
    )
    quality: Quality = Quality()
    refresh: Refresh | None = Field(None, description="optional scheduled refresh of the stills (cron)")
    budget: Budget | None = Field(None, description="optional credit budget for hosted calls")

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a slug (lowercase letters, digits and '-', at most 64 chars)")
        return v

    @field_validator("palette")
    @classmethod
    def _palette(cls, v: dict[str, str]) -> dict[str, str]:
        for name, code in v.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"palette name {name!r} must be snake_case")
            if not isinstance(code, str) or not HEX_RE.fullmatch(code):
                raise ValueError(f"palette colour {name!r}: {code!r} is not a #RRGGBB hex code")
        return {k: c.upper() for k, c in v.items()}

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        for f in v:
            if f not in FORMAT_KEYS:
                raise ValueError(f"unknown format {f!r}; known formats: {', '.join(FORMAT_KEYS)}")
        if len(set(v)) != len(v):
            raise ValueError("formats are listed more than once")
        return v

    @model_validator(mode="after")
    def _colour_refs(self) -> CampaignSpec:
        refs: list[tuple[str, str]] = [
            (f"scene.background.colors.{i}", c) for i, c in enumerate(self.scene.background.colors)
        ]
        refs += [
            (f"scene.layers.{i}.color", layer.color)
            for i, layer in enumerate(self.scene.layers)
            if isinstance(layer, ShapeLayer)
        ]
        if self.scene.headline:
            refs.append(("scene.headline.color", self.scene.headline.color))
        for field, ref in refs:
            if ref.startswith("#"):
                if not HEX_RE.fullmatch(ref):
                    raise ValueError(f"{field}: {ref!r} is not a #RRGGBB hex code")
            elif ref not in self.palette:
                raise ValueError(f"{field}: {ref!r} is neither a palette name ({', '.join(self.palette)}) nor a hex")
        for name in self.quality.brand_lock:
            if name not in self.palette:
                raise ValueError(f"quality.brand_lock: {name!r} is not a palette name ({', '.join(self.palette)})")
        for i, fix in enumerate(self.fixes):
            if fix.action == "instruct" and self.route.inpaint_fix == "local":
                raise ValueError(
                    f"fixes.{i}: action 'instruct' needs a hosted inpaint route that follows instructions; "
                    "route.inpaint_fix is 'local'"
                )
        return self

    def color(self, ref: str) -> str:
        """Resolve a palette name or hex code to a #RRGGBB hex code."""
        return ref.upper() if ref.startswith("#") else self.palette[ref]


# --------------------------------------------------------------------------------------------------
# Errors and loading
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecProblem:
    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


class SpecError(ValueError):
    """One or more problems in a campaign spec; ``str()`` lists them one per line."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Campaign:
    """A validated spec together with the folder its relative paths resolve against."""

    spec: CampaignSpec
    folder: Path
    spec_path: Path

    @property
    def id(self) -> str:
        return self.spec.id

    def resolve(self, relative: str) -> Path:
        """Resolve a path from the spec; it must stay inside the campaign folder."""
        return _resolve_inside(self.folder, relative)

    def asset_files(self) -> list[str]:
        """Relative paths of every file the spec refers to (cutouts, fonts, masks, patches)."""
        files = [layer.source for layer in self.spec.scene.layers if isinstance(layer, ImageLayer)]
        hl = self.spec.scene.headline
        if hl and not hl.font.startswith("builtin:"):
            files.append(hl.font)
        for fix in self.spec.fixes:
            files += [f for f in (fix.mask.png, fix.patch) if f]
        return files

    def digest(self) -> str:
        """Content hash of the validated spec and every file it refers to."""
        h = hashlib.sha256(self.spec.model_dump_json().encode())
        for rel in sorted(set(self.asset_files())):
            h.update(rel.encode())
            h.update(self.resolve(rel).read_bytes())
        return h.hexdigest()


def _resolve_inside(folder: Path, relative: str) -> Path:
    rel = Path(relative)
    if rel.is_absolute():
        raise ValueError(f"{relative!r} is absolute; paths must be relative to the campaign folder")
    root = folder.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"{relative!r} escapes the campaign folder {folder}")
    return target


def _field_name(loc: tuple[Any, ...]) -> str:
    # pydantic puts the discriminator tag into loc ("layers.0.image.source"); keep it readable.
    return ".".join(str(p) for p in loc) or "(top level)"


class _YamlLimit(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


class _Limits(yaml.composer.Composer):
    """PyYAML's safe loading with limits: nesting depth and list length checked while composing (so a
    deeply nested or huge file never reaches the recursive constructor, and is refused after the limit,
    not after it was all read), and duplicate keys refused (YAML says they are an error; PyYAML keeps
    the last one silently). Mixed into a loader below; the methods follow PyYAML's Composer."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise _YamlLimit("(yaml)", f"nested more than {MAX_YAML_DEPTH} levels deep at line {line}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_sequence_node(self, anchor: Any) -> Any:
        # PyYAML's own loop, with the item count bounded while composing (a 1e6-point list is refused
        # after MAX_LIST_ITEMS items, not after it was all read)
        start_event = self.get_event()
        tag = start_event.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.SequenceNode, None, start_event.implicit)
        node = yaml.SequenceNode(tag, [], start_event.start_mark, None, flow_style=start_event.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        index = 0
        while not self.check_event(yaml.SequenceEndEvent):
            if index >= MAX_LIST_ITEMS:
                line = start_event.start_mark.line + 1
                raise _YamlLimit("(yaml)", f"the list at line {line} has more than {MAX_LIST_ITEMS:,} items")
            node.value.append(self.compose_node(node, index))
            index += 1
        end_event = self.get_event()
        node.end_mark = end_event.end_mark
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue  # an unhashable key: the constructor below reports it
                if first != key_node.start_mark.line + 1:
                    raise _YamlLimit(
                        str(key),
                        f"duplicate key at line {key_node.start_mark.line + 1} (first at line {first}); "
                        "YAML keeps only one of them",
                    )
        return super().construct_mapping(node, deep=deep)


if (
    yaml.__with_libyaml__
):  # libyaml's parser produces the events (5x faster), PyYAML's composer (with the limits) the nodes

    class _SpecLoader(_Limits, yaml.cyaml.CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        def __init__(self, stream: str) -> None:
            yaml.cyaml.CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

else:  # pragma: no cover - PyYAML without libyaml

    class _SpecLoader(_Limits, yaml.SafeLoader):  # type: ignore[no-redef]
        pass


def read_yaml(text: str, *, file: str) -> Any:
    """The YAML document of a spec, within the limits above; raises SpecError."""
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except _YamlLimit as exc:
        raise SpecError([SpecProblem(file, exc.field, exc.reason)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem(file, "(yaml)", f"not valid YAML: {str(exc)[:500]}")]) from None
    except RecursionError:
        raise SpecError([SpecProblem(file, "(yaml)", "nested too deeply")]) from None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def value_problems(data: Any, *, file: str) -> list[SpecProblem]:
    """Problems pydantic would not report, or would report too late or too verbosely: non-finite numbers
    anywhere, over-long lists and strings, control characters. Iterative: depth is already bounded."""
    problems: list[SpecProblem] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        field = path or "(top level)"
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(SpecProblem(file, field, f"{value} is not a finite number"))
        elif isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                problems.append(SpecProblem(file, field, f"{len(value):,} characters; at most {MAX_STRING_CHARS:,}"))
            elif m := _CONTROL.search(value):
                problems.append(
                    SpecProblem(file, field, f"contains the control character U+{ord(m.group()):04X} at {m.start()}")
                )
        elif isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                problems.append(SpecProblem(file, field, f"{len(value):,} items; at most {MAX_LIST_ITEMS:,}"))
            else:
                stack += [(f"{path}.{i}" if path else str(i), v) for i, v in reversed(list(enumerate(value)))]
        elif isinstance(value, dict):
            stack += [(f"{path}.{k}" if path else str(k), v) for k, v in reversed(list(value.items()))]
    return problems


def bounded(problems: list[SpecProblem]) -> list[SpecProblem]:
    """At most MAX_PROBLEMS_SHOWN problems, then one line with the count of the rest."""
    if len(problems) <= MAX_PROBLEMS_SHOWN:
        return problems
    rest = len(problems) - MAX_PROBLEMS_SHOWN
    last = problems[MAX_PROBLEMS_SHOWN - 1]
    return [*problems[:MAX_PROBLEMS_SHOWN], SpecProblem(last.file, "...", f"and {rest} more problem(s)")]


def _few(items: list[Any]) -> str:
    shown = ", ".join(str(list(i) if isinstance(i, tuple) else i) for i in items[:MAX_ITEMS_SHOWN])
    return shown + (f" ... ({len(items)} in all)" if len(items) > MAX_ITEMS_SHOWN else "")


def parse_spec(data: Any, *, file: str) -> CampaignSpec:
    if not isinstance(data, dict):
        raise SpecError([SpecProblem(file, "(top level)", "expected a mapping of campaign fields")])
    if early := value_problems(data, file=file):
        raise SpecError(bounded(early))
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see docs/campaign-spec.md)"
            problems.append(SpecProblem(file, _field_name(err["loc"]), msg[:500]))
        raise SpecError(bounded(problems)) from None


MAX_FONT_BYTES = 50_000_000


def font_problem(path: Path) -> str | None:
    """Why ``path`` is not a font the renderer can use, or None."""
    from PIL import ImageFont

    if path.stat().st_size > MAX_FONT_BYTES:
        return f"{path.stat().st_size:,} bytes; a font file may have at most {MAX_FONT_BYTES:,}"
    try:
        ImageFont.truetype(str(path), 16)
    except OSError as exc:
        return f"not a font file (TrueType/OpenType) the renderer can read: {exc}"
    return None


def check_campaign_files(spec: CampaignSpec, folder: Path, *, file: str) -> list[SpecProblem]:
    """Second pass: files exist, stay inside the folder, load safely; masks lie inside the canvas."""
    problems: list[SpecProblem] = []
    cw, ch = spec.scene.canvas_size

    def check_image(field: str, rel: str, mode: str) -> Any:
        try:
            path = _resolve_inside(folder, rel)
        except ValueError as exc:
            problems.append(SpecProblem(file, field, str(exc)))
            return None
        try:
            return load_user_image(path, mode=mode)
        except ImageLoadError as exc:
            problems.append(SpecProblem(file, field, f"{rel}: {exc}"))
            return None

    if spec.id != folder.name:
        problems.append(SpecProblem(file, "id", f"id {spec.id!r} must match the folder name {folder.name!r}"))
    for i, layer in enumerate(spec.scene.layers):
        if isinstance(layer, ImageLayer):
            img = check_image(f"scene.layers.{i}.source", layer.source, "RGBA")
            if img is not None and int(img[..., 3].min()) == 255:
                problems.append(
                    SpecProblem(file, f"scene.layers.{i}.source", f"{layer.source}: cutout has no transparency")
                )
    headline = spec.scene.headline
    font_path: Path | None = None
    if headline and not headline.font.startswith("builtin:"):
        font = headline.font
        try:
            fpath = _resolve_inside(folder, font)
            if not fpath.is_file():
                problems.append(SpecProblem(file, "scene.headline.font", f"{font}: file not found"))
            elif reason := font_problem(fpath):
                problems.append(SpecProblem(file, "scene.headline.font", f"{font}: {reason}"))
            else:
                font_path = fpath
        except ValueError as exc:
            problems.append(SpecProblem(file, "scene.headline.font", str(exc)))
    elif headline:
        name = headline.font.removeprefix("builtin:")
        if name not in BUILTIN_FONTS:
            problems.append(
                SpecProblem(
                    file,
                    "scene.headline.font",
                    f"unknown builtin font {name!r}; have {sorted(BUILTIN_FONTS)}",
                )
            )
        else:
            font_path = text.builtin_font_path(name)
    if headline and font_path is not None:
        for reason in text.headline_problems(font_path, headline.text, tracking=headline.tracking):
            problems.append(SpecProblem(file, "scene.headline.text", reason))
    for i, fix in enumerate(spec.fixes):
        m = fix.mask
        field = f"fixes.{i}.mask"
        if m.rect is not None:
            x, y, w, h = m.rect
            if x < 0 or y < 0 or x + w > cw or y + h > ch:
                problems.append(
                    SpecProblem(file, f"{field}.rect", f"rectangle {list(m.rect)} lies outside the {cw}x{ch} canvas")
                )
        elif m.polygon is not None:
            bad = [p for p in m.polygon if not (0 <= p[0] < cw and 0 <= p[1] < ch)]
            if bad:
                problems.append(
                    SpecProblem(file, f"{field}.polygon", f"points {_few(bad)} lie outside the {cw}x{ch} canvas")
                )
        elif m.png is not None:
            mask = check_image(f"{field}.png", m.png, "L")
            if mask is not None:
                if mask.shape != (ch, cw):
                    problems.append(
                        SpecProblem(
                            file,
                            f"{field}.png",
                            f"{m.png} is {mask.shape[1]}x{mask.shape[0]}, the base canvas is {cw}x{ch}",
                        )
                    )
                elif int(mask.max()) == 0:
                    problems.append(SpecProblem(file, f"{field}.png", f"{m.png} is empty (all black)"))
        if fix.patch:
            check_image(f"fixes.{i}.patch", fix.patch, "RGBA")
    return problems


def load_campaign(spec_path: Path, *, raw: bytes | None = None) -> Campaign:
    """Load and fully validate one campaign spec; raises SpecError listing every problem.

    ``raw``: the spec's bytes, already read by the caller (the spec index fingerprints exactly the bytes
    that were validated)."""
    spec_path = Path(spec_path)
    file = str(spec_path)
    try:
        size = len(raw) if raw is not None else spec_path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(
                [SpecProblem(file, "(file)", f"{size:,} bytes; a spec may have at most {MAX_SPEC_BYTES:,}")]
            )
        if raw is None:
            raw = spec_path.read_bytes()
    except OSError as exc:
        raise SpecError([SpecProblem(file, "(file)", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [SpecProblem(file, "(file)", f"not UTF-8 text: byte {exc.start} is {raw[exc.start]:#04x}")]
        ) from None
    data = read_yaml(source, file=file)
    spec = parse_spec(data, file=file)
    problems = check_campaign_files(spec, spec_path.parent, file=file)
    if problems:
        raise SpecError(bounded(problems))
    return Campaign(spec=spec, folder=spec_path.parent.resolve(), spec_path=spec_path.resolve())


def discover_spec_paths(campaigns_dir: Path) -> list[Path]:
    """All ``<dir>/<id>/campaign.yaml`` files, sorted by campaign id."""
    return sorted(p for p in Path(campaigns_dir).glob(f"*/{SPEC_FILENAME}") if p.is_file())


def load_all(campaigns_dir: Path) -> tuple[dict[str, Campaign], list[SpecError]]:
    """Load every campaign; an invalid one is reported and skipped, the others go on."""
    good: dict[str, Campaign] = {}
    bad: list[SpecError] = []
    for path in discover_spec_paths(campaigns_dir):
        try:
            c = load_campaign(path)
        except SpecError as exc:
            bad.append(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - one spec that breaks the loader must not stop the others
            reason = f"could not be loaded: {type(exc).__name__}: {str(exc)[:300]}"
            bad.append(SpecError([SpecProblem(str(path), "(file)", reason)]))
            continue
        good[c.id] = c
    return good, bad
