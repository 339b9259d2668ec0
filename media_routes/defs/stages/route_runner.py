"""Run a stage on its planned route: the local engine or a hosted model, with fallbacks; return the decision.

``RouteRunner.run`` returns the raw result together with the :class:`RouteDecision` that produced it (provider,
model, reason, plan, attempts, calls), so the output's metadata is built from a value, not from state stored on
an object in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dagster as dg

from media_routes.defs.providers import ProviderHub
from media_routes.hosted.common import HostedStage
from media_routes.routing.execute import Attempt, HostedCalls, RouteFailed, run_plan
from media_routes.routing.router import Candidate, RoutePlan
from media_routes.spec import Campaign

T = TypeVar("T")
LOCAL_MODEL = "local-engine"
FAILURE_LINE = "failure_line"  # the one-line reason of a failed stage (provider, model, reason, request id)


@dataclass(frozen=True)
class RouteDecision:
    """The route that produced a materialization, and why (the plan, the attempts, the calls)."""

    stage: str
    provider: str
    model: str
    reason: str
    detail: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "provider": self.provider,
            "model": self.model,
            "reason": self.reason,
            **(self.detail or {}),
        }

    @property
    def credits(self) -> float:
        return float((self.detail or {}).get("calls", {}).get("credits", 0.0))

    @property
    def cache_hits(self) -> int:
        return int((self.detail or {}).get("calls", {}).get("cache_hits", 0))

    @property
    def credits_estimate(self) -> float:
        return float((self.detail or {}).get("credits_estimate") or 0.0)


@dataclass(frozen=True)
class Routed(Generic[T]):
    value: T
    decision: RouteDecision

    @property
    def hosted(self) -> bool:
        """The value is a provider's answer (not the local engine's): its brand is verified before it is restored."""
        return self.decision.provider != "local"


@dataclass(frozen=True)
class RouteRunner:
    stage: str
    code_version: str
    campaign: Campaign
    seed: int
    plan: RoutePlan
    providers: ProviderHub
    calls: HostedCalls
    log: Any  # the run's DagsterLogManager

    def run(self, local: Callable[[], T], hosted: Callable[[HostedStage], T]) -> Routed[T]:
        """Produce the stage's raw result on the planned route, falling back as the plan allows.

        ``local`` runs the local engine; ``hosted`` gets a :class:`HostedStage` for the candidate being tried. A
        route that cannot produce the output fails the step with the provider, model, reason and request id; Dagster
        retries the step only for the local engine's own transient errors.
        """

        def attempt(cand: Candidate) -> T:
            if cand.provider == "local":
                return local()  # its compute seconds go into the ledger with the output (StageIO.output)
            return hosted(
                HostedStage(cand, self.calls, self.providers, self.campaign, self.seed, self.plan.profile.prompt_style)
            )

        for line in self.plan.explain():
            self.log.info(f"route plan: {line}")
        try:
            value, cand, attempts = run_plan(
                self.plan, attempt, log=self.log, health=self.providers.health(), run_id=self.calls.run_id
            )
        except RouteFailed as exc:
            raise dg.Failure(
                description=str(exc),
                allow_retries=exc.retryable,  # never for a provider's answer (docs/routing.md, "Retries")
                metadata={
                    FAILURE_LINE: dg.MetadataValue.text(exc.line),
                    "route_plan": dg.MetadataValue.json(self.plan.as_json()),
                    "attempts": dg.MetadataValue.json([a.__dict__ for a in exc.attempts]),
                    "calls": dg.MetadataValue.json(self.calls.summary()),
                },
            ) from None
        return Routed(value, self.decision(cand, attempts))

    def decision(self, cand: Candidate, attempts: list[Attempt]) -> RouteDecision:
        model = f"{LOCAL_MODEL}/{self.stage}@{self.code_version}" if cand.provider == "local" else cand.model
        fell_back = [a for a in attempts if a.outcome == "fallback"]
        reason = f"{cand.route} from {self.plan.source}"
        if fell_back:
            reason += " after falling back from " + ", ".join(a.route for a in fell_back)
        return RouteDecision(
            stage=self.stage,
            provider=cand.provider,
            model=model,
            reason=reason,
            detail={
                "route": cand.route,
                "credits_estimate": cand.credits,
                "plan": self.plan.as_json(),
                "attempts": [a.__dict__ for a in attempts],
                "calls": self.calls.summary(),
            },
        )
