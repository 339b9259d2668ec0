"""The router: for one stage (and format) of a campaign, rank the candidate routes and explain why.

Each candidate of the profile (or the spec's override) is checked against, in this order: the stage's
needs and the model card's capabilities (text rendering, output size, upscale factor, aspect ratios,
masks, instructions, video durations), the profile's intent (may it re-interpret?), credentials,
provider health and the price table. Candidates that pass are ordered by the profile's preference
(listed order, or cost); the first is chosen, the rest are the fallbacks in order. Every rejection keeps
its reasons, so ``media-routes routes C`` and the materialization metadata can show the whole decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from media_routes.credits.ledger import PriceTable, Units, UnknownPriceError
from media_routes.formats import K_LEVEL_LONG_SIDE, canvas_size, get_format
from media_routes.model_cards import CARDS, ModelCard
from media_routes.routing.profiles import RouteProfile, load_profile
from media_routes.spec import Campaign
from media_routes.stages import BASE_COMPOSITION, FORMAT_STAGES, STAGES


@dataclass(frozen=True)
class Candidate:
    route: str
    provider: str
    model: str
    rejected: tuple[str, ...] = ()  # reasons; empty: admissible
    notes: tuple[str, ...] = ()
    units: Units = Units()
    credits: float | None = None  # estimated, from the price table
    price_model: str = ""

    @property
    def admissible(self) -> bool:
        return not self.rejected

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"route": self.route, "credits_estimate": self.credits}
        if self.rejected:
            out["rejected"] = list(self.rejected)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class RoutePlan:
    stage: str
    format_key: str | None
    source: str  # "profile brand-safe" or "override route.motion"
    profile: RouteProfile
    ranked: tuple[Candidate, ...]  # admissible, in the order they will be tried
    rejected: tuple[Candidate, ...]

    @property
    def chosen(self) -> Candidate | None:
        return self.ranked[0] if self.ranked else None

    @property
    def fallbacks(self) -> tuple[Candidate, ...]:
        return self.ranked[1:]

    def explain(self) -> list[str]:
        where = f"{self.stage}" + (f" [{self.format_key}]" if self.format_key else "")
        lines = []
        if self.chosen is None:
            lines.append(f"{where}: NO ADMISSIBLE ROUTE ({self.source})")
        else:
            c = self.chosen
            cost = "" if c.credits is None else f", ~{c.credits:g} credits"
            lines.append(f"{where}: {c.route} ({self.source}{cost})" + "".join(f"; {n}" for n in c.notes))
        for f in self.fallbacks:
            cost = "" if f.credits is None else f" (~{f.credits:g} credits)"
            lines.append(f"    fallback {f.route}{cost}")
        for r in self.rejected:
            lines.append(f"    rejected {r.route}: {'; '.join(r.rejected)}")
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "format": self.format_key,
            "source": self.source,
            "intent": self.profile.intent,
            "chosen": self.chosen.route if self.chosen else None,
            "fallbacks": [c.route for c in self.fallbacks],
            "candidates": [c.as_json() for c in (*self.ranked, *self.rejected)],
        }


@dataclass
class RouterContext:
    """What the router needs to know about the world, besides the spec and the cards."""

    prices: PriceTable
    missing_credentials: Callable[[ModelCard], list[str]]
    health: Callable[[ModelCard], str | None] = lambda card: None
    notes: dict[str, str] = field(default_factory=dict)


def segments_for(duration_s: float, durations: tuple[int, ...], chain: bool) -> list[int] | None:
    """Call lengths that cover ``duration_s``: one call if a length is long enough (the fewest seconds over),
    else, when chaining is allowed, the shortest sum of calls that covers it (fewest calls on a tie)."""
    need = math.ceil(duration_s - 1e-9)
    single = [d for d in durations if d >= need]
    if single:
        return [min(single)]
    if not chain or not durations:
        return None
    best: dict[int, list[int]] = {0: []}
    for total in range(1, need + max(durations) + 1):
        options = [best[total - d] + [d] for d in durations if total - d in best]
        if options:
            best[total] = min(options, key=len)
    covering = [t for t in best if t >= need]
    t = min(covering)
    return sorted(best[t], reverse=True)


def _aspect_label(w: int, h: int) -> str:
    g = math.gcd(w, h)
    return f"{w // g}:{h // g}"


def _evaluate(
    card: ModelCard, stage: str, campaign: Campaign, format_key: str | None, profile: RouteProfile
) -> tuple[list[str], list[str], Units, str]:
    """(problems, notes, billable units of the stage on this card, price model) from capabilities and intent."""
    spec = campaign.spec
    problems: list[str] = []
    notes: list[str] = []
    units = Units()
    price_model = card.priced_as
    if stage not in card.stages:
        return [f"does not run {stage}"], notes, units, price_model
    if stage == BASE_COMPOSITION:
        if spec.scene.headline is not None and not card.text_rendering:
            problems.append("cannot render exact headline text and the spec has a headline")
        if card.aspect_ratios is not None and spec.scene.aspect not in card.aspect_ratios:
            problems.append(f"scene.aspect {spec.scene.aspect} is not offered ({', '.join(card.aspect_ratios)})")
        units = Units(images=1)
    elif stage == "lighting_iteration":
        units = Units(images=1)
    elif stage == "inpaint_fix":
        # a 'replace' fix pastes its patch locally on every route: only the others are generated (billed)
        n = len([f for f in spec.fixes if f.action != "replace"]) if card.hosted else len(spec.fixes)
        if any(f.action == "instruct" for f in spec.fixes) and not card.follows_instructions:
            problems.append("an 'instruct' fix needs a model that follows instructions")
        if n and card.mask == "none":
            problems.append("takes no mask")
        if card.hosted and card.mask == "instruction":
            notes.append("mask passed as an image with an instruction; pixels outside the mask are restored")
        if n == 0:
            notes.append("no fixes in the spec: no call")
        units = Units(images=n)
    elif stage == "k_upscale":
        target = K_LEVEL_LONG_SIDE[spec.upscale.target]
        factor = target / max(spec.scene.canvas_size)
        if target > card.max_long_side:
            problems.append(f"{spec.upscale.target} ({target} px) exceeds its {card.max_long_side} px maximum")
        if card.max_upscale_factor is not None and factor > card.max_upscale_factor:
            problems.append(f"needs x{factor:g}, it upscales at most x{card.max_upscale_factor:g} per call")
        w, h = spec.scene.canvas_size
        units = Units(images=1, megapixels=round(w * h * factor * factor / 1e6, 3))
        if card.provider == "google" and spec.upscale.target == "4K":
            price_model = f"{card.priced_as}@4K"
    elif stage in FORMAT_STAGES:
        fmt = get_format(str(format_key))
        aspect = _aspect_label(fmt.aspect_w, fmt.aspect_h)
        if card.aspect_ratios is not None and aspect not in card.aspect_ratios:
            problems.append(f"format {fmt.key} ({aspect}) is not offered ({', '.join(card.aspect_ratios)})")
        if stage == "aspect_outpaint":
            w, h = spec.scene.canvas_size
            if canvas_size(w, h, fmt.aspect) == (w, h):
                notes.append("the master already has this aspect: nothing to expand, no call")
            else:
                units = Units(images=1)
        else:
            duration = spec.motion.duration_s
            segments = segments_for(duration, card.video_durations_s, profile.chain_video) if card.hosted else None
            if card.hosted and segments is None:
                problems.append(
                    f"makes {'/'.join(map(str, card.video_durations_s))} s per call; {duration:g} s needs "
                    "chaining, which the profile does not allow"
                )
            elif card.hosted and segments:
                made = sum(segments)
                if len(segments) > 1:
                    notes.append(
                        f"{duration:g} s = " + " + ".join(f"{s} s" for s in segments) + " chained (last frame -> "
                        "first frame of the next call)" + (f", trimmed from {made} s" if made > duration else "")
                    )
                elif made > duration:
                    notes.append(f"one {made} s call trimmed to {duration:g} s")
                units = Units(video_seconds=made)
    if card.hosted and stage in card.reinterprets and not profile.allow_reinterpretation:
        problems.append(f"may re-interpret the image at this stage; intent {profile.intent} keeps the base layer")
    return problems, notes, units, price_model


def plan_stage(campaign: Campaign, stage: str, format_key: str | None, ctx: RouterContext) -> RoutePlan:
    """Rank and explain the routes of ``stage`` (and ``format_key`` for stages 5-6) for ``campaign``."""
    route = campaign.spec.route
    profile = load_profile(route.profile)
    override = route.override_for(stage)
    if override is not None:
        routes, source = [override], f"override route.{stage} in {campaign.spec_path.name}"
    else:
        routes, source = list(profile.stages[stage]), f"profile {profile.name}"
    ranked: list[Candidate] = []
    rejected: list[Candidate] = []
    for route_id in routes:
        card = CARDS[route_id]
        problems, notes, units, price_model = _evaluate(card, stage, campaign, format_key, profile)
        if card.hosted:
            missing = ctx.missing_credentials(card)
            if missing:
                problems.append(f"{' and '.join(missing)} not set")
            health = ctx.health(card)
            if health:
                problems.append(f"unhealthy: {health}")
        credits: float | None = None
        if card.hosted:
            try:
                credits, _ = ctx.prices.price(card.provider, price_model, units)
            except UnknownPriceError as exc:
                problems.append(f"no price in the price table ({exc}); never called unpriced")
        else:
            credits = 0.0
        cand = Candidate(
            route=route_id,
            provider=card.provider,
            model=card.model,
            rejected=tuple(problems),
            notes=tuple(notes),
            units=units,
            credits=credits,
            price_model=price_model,
        )
        (rejected if problems else ranked).append(cand)
    if profile.prefer == "cost":
        ranked.sort(key=lambda c: c.credits if c.credits is not None else math.inf)
    return RoutePlan(
        stage=stage,
        format_key=format_key,
        source=source,
        profile=profile,
        ranked=tuple(ranked),
        rejected=tuple(rejected),
    )


def plan_campaign(campaign: Campaign, ctx: RouterContext) -> list[RoutePlan]:
    """The plans of every stage; stages 5-6 once per format the spec lists."""
    plans: list[RoutePlan] = []
    for stage in STAGES:
        if stage in FORMAT_STAGES:
            plans.extend(plan_stage(campaign, stage, f, ctx) for f in campaign.spec.formats)
        else:
            plans.append(plan_stage(campaign, stage, None, ctx))
    return plans
