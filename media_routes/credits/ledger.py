"""Ledger of every provider call and cache hit, priced from a YAML price table, with pandas totals.

Storage is a :class:`~media_routes.credits.backends.StateDB`: a SQLite file (the default, ``Ledger(path, ...)``)
or PostgreSQL (``Ledger(PostgresDB(url), ...)``; ``ProviderHub.ledger()`` picks it when
``$MEDIA_ROUTES_STATE_DB_URL`` is set, see :mod:`media_routes.credits.backends`). :data:`SCHEMA_SQL` uses only
portable SQL (explicit types, a text UUID primary key generated in Python instead of AUTOINCREMENT,
``BOOLEAN``/``DOUBLE PRECISION`` which Postgres takes as-is and SQLite maps to integer/real affinity, ISO-8601
UTC timestamps as text), so the same statements create the tables on both. Parameters are written ``?`` and
bound as ``%s`` on psycopg2; ``hit`` is bound as a Python bool (a real BOOLEAN on Postgres).

Each row's ``credits``/``usd`` is what the call cost: the priced amount for a miss, zero for a cache hit. A hit
also records what it would have cost in ``saved_credits``/``saved_usd``, which the reports sum as savings.

Every answer the provider may bill has a row (issue #14), written under the call key's lock when the answer
arrives, before it is parsed (``providers/receipts.py``), then settled: ``billed`` says whether the provider may
charge for it (a filtered Veo video or a failed Kling task is free), ``outcome`` what came of it: ``usable`` (stored
in the call cache), ``unparseable`` (a 2xx whose body or image could not be read), ``blocked`` (a content block),
``failed`` (a 2xx or finished job without a result), ``lost`` (sent, answer never arrived: a read timeout), or
``received`` (a crash between the answer's arrival and its settling). A billed row costs the price-table price
whatever its outcome, so budgets, ``costs`` and the failure metadata count it. Cache hits and local-engine rows
are ``usable`` and not billed. Rows written before these columns existed are migrated (``billed`` = a hosted miss).

Beside the estimate (``credits``/``usd``, the price table's price for the call's units) a row carries the **actual**
cost where the provider reports what it used (issue #14 item 4, ``providers/receipts.Usage``): Gemini's
``usageMetadata`` token counts x the token prices, a Veo video's seconds x its per-second price, Kling's
``final_unit_deduction`` x the unit price (:meth:`PriceTable.actual`). ``actual_basis`` (JSON) keeps what it was
computed from: the counts, where they were read, and any count no price covers. ``actual_credits``/``actual_usd``
are NULL where nothing was reported ("not reported": fal, a truncated answer, a lost one) or where what was reported
carries no price (fal's inference time). Older ledgers get the three columns, NULL, on open.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from media_routes.credits.backends import Conn, StateDB, as_state_db
from media_routes.credits.call_cache import CacheResult, CallCache

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ledger_calls (
    id            VARCHAR(32) PRIMARY KEY,
    ts            VARCHAR(40) NOT NULL,
    run_id        TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    format        TEXT NULL,
    stage         TEXT NOT NULL,
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    units         TEXT NOT NULL,
    credits       DOUBLE PRECISION NOT NULL,
    usd           DOUBLE PRECISION NOT NULL,
    saved_credits DOUBLE PRECISION NOT NULL,
    saved_usd     DOUBLE PRECISION NOT NULL,
    hit           BOOLEAN NOT NULL,
    call_key      VARCHAR(64) NULL,
    billed        BOOLEAN NOT NULL DEFAULT FALSE,
    outcome       VARCHAR(16) NOT NULL DEFAULT 'usable',
    request_id    TEXT NULL,
    reason        TEXT NULL,
    actual_credits DOUBLE PRECISION NULL,
    actual_usd    DOUBLE PRECISION NULL,
    actual_basis  TEXT NULL
);
CREATE INDEX IF NOT EXISTS ledger_calls_campaign ON ledger_calls (campaign);
CREATE TABLE IF NOT EXISTS ledger_refusals (
    id            VARCHAR(32) PRIMARY KEY,
    ts            VARCHAR(40) NOT NULL,
    run_id        TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    format        TEXT NULL,
    stage         TEXT NOT NULL,
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    credits       DOUBLE PRECISION NOT NULL,
    scope         TEXT NOT NULL,
    budget        DOUBLE PRECISION NOT NULL,
    spent         DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_calls_call_key ON ledger_calls (call_key);
"""

_UNIT_FIELDS = {
    "image": "images",
    "megapixel": "megapixels",
    "video_second": "video_seconds",
    "compute_second": "compute_seconds",
}
GROUPS = ("campaign", "stage", "provider", "format")
LOCAL_PROVIDER = "local"
USABLE = "usable"
RECEIVED = "received"
# outcomes of a paid answer that produced nothing usable: never re-sent automatically (an operator's re-roll is)
UNUSABLE_PAID = ("unparseable", "failed", "blocked")
OUTCOMES = (USABLE, RECEIVED, "lost", *UNUSABLE_PAID)
# columns added after the first release of the table: (name, SQL type with default, how old rows are filled)
_ADDED_COLUMNS = (
    (
        "billed",
        "BOOLEAN NOT NULL DEFAULT FALSE",
        f"UPDATE ledger_calls SET billed = (NOT hit AND provider <> '{LOCAL_PROVIDER}')",
    ),
    ("outcome", "VARCHAR(16) NOT NULL DEFAULT 'usable'", None),
    ("request_id", "TEXT NULL", None),
    ("reason", "TEXT NULL", None),
    # the actual cost the provider reported (issue #14 item 4): NULL = not reported, so old rows need no fill
    ("actual_credits", "DOUBLE PRECISION NULL", None),
    ("actual_usd", "DOUBLE PRECISION NULL", None),
    ("actual_basis", "TEXT NULL", None),
)


class UnknownPriceError(KeyError):
    """No price-table entry for a provider/model; the call must not be made unpriced."""

    def __init__(self, provider: str, model: str, source: str) -> None:
        super().__init__(provider, model)
        self.provider = provider
        self.model = model
        self.message = f"no price for provider={provider!r} model={model!r} in {source}; add it with source and as_of"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Units:
    """Billable quantities of one call. ``compute_seconds`` is for local-engine calls (priced at zero)."""

    images: float = 0
    megapixels: float = 0
    video_seconds: float = 0
    compute_seconds: float = 0

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v}, sort_keys=True)


@dataclass(frozen=True)
class UsagePrice:
    """Prices of what a provider reports per call (tokens, deducted units), per reported count name."""

    provider: str
    model: str
    usd_per_count: Mapping[str, float]  # e.g. {"input_tokens": 2e-6, "output_image_tokens": 1.2e-4}
    source: str
    as_of: date


@dataclass(frozen=True)
class ActualCost:
    """The cost computed from what the provider reported for one call; ``usd`` None: reported, but no price covers
    it (e.g. fal's inference time). ``basis``: counts, source and the counts left unpriced (a partial figure)."""

    usd: float | None
    credits: float | None
    basis: Mapping[str, Any]

    @property
    def partial(self) -> bool:
        return bool(self.basis.get("unpriced"))


@dataclass(frozen=True)
class Price:
    provider: str
    model: str
    unit: str
    usd_per_unit: float
    source: str
    as_of: date


class PriceTable:
    """Prices per (provider, model), each with its source and date. ``usd_per_credit`` defines the credit."""

    def __init__(
        self,
        prices: Sequence[Price],
        *,
        usd_per_credit: float,
        source: str = "<in memory>",
        usage_prices: Sequence[UsagePrice] = (),
    ) -> None:
        if usd_per_credit <= 0:
            raise ValueError("usd_per_credit must be positive")
        self.usd_per_credit = usd_per_credit
        self.source = source
        self._usage: dict[tuple[str, str], UsagePrice] = {}
        for u in usage_prices:
            if any(v < 0 for v in u.usd_per_count.values()):
                raise ValueError(f"{source}: {u.provider}/{u.model}: negative usage price")
            if (u.provider, u.model) in self._usage:
                raise ValueError(f"{source}: duplicate usage price for {u.provider}/{u.model}")
            self._usage[(u.provider, u.model)] = u
        self._prices: dict[tuple[str, str], Price] = {}
        for p in prices:
            if p.unit not in _UNIT_FIELDS:
                units = sorted(_UNIT_FIELDS)
                raise ValueError(f"{source}: {p.provider}/{p.model}: unknown unit {p.unit!r}, use one of {units}")
            if p.usd_per_unit < 0:
                raise ValueError(f"{source}: {p.provider}/{p.model}: negative price")
            if (p.provider, p.model) in self._prices:
                raise ValueError(f"{source}: duplicate price for {p.provider}/{p.model}")
            self._prices[(p.provider, p.model)] = p

    @classmethod
    def from_yaml(cls, path: Path = DEFAULT_PRICES) -> PriceTable:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        prices = []
        for i, entry in enumerate(doc.get("prices") or []):
            missing = {"provider", "model", "unit", "usd_per_unit", "source", "as_of"} - set(entry)
            if missing:
                raise ValueError(f"{path}: price #{i} lacks {sorted(missing)}")
            as_of = entry["as_of"]
            if not isinstance(as_of, date):
                as_of = date.fromisoformat(str(as_of))
            prices.append(
                Price(
                    provider=str(entry["provider"]),
                    model=str(entry["model"]),
                    unit=str(entry["unit"]),
                    usd_per_unit=float(entry["usd_per_unit"]),
                    source=str(entry["source"]),
                    as_of=as_of,
                )
            )
        usage = []
        for i, entry in enumerate(doc.get("usage_prices") or []):
            missing = {"provider", "model", "source", "as_of"} - set(entry)
            if missing or not ({"usd_per_million", "usd_per_count"} & set(entry)):
                raise ValueError(f"{path}: usage price #{i} lacks {sorted(missing) or 'usd_per_million/usd_per_count'}")
            rates = {str(k): float(v) / 1e6 for k, v in (entry.get("usd_per_million") or {}).items()}
            rates |= {str(k): float(v) for k, v in (entry.get("usd_per_count") or {}).items()}
            as_of = entry["as_of"]
            usage.append(
                UsagePrice(
                    provider=str(entry["provider"]),
                    model=str(entry["model"]),
                    usd_per_count=rates,
                    source=str(entry["source"]),
                    as_of=as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of)),
                )
            )
        return cls(prices, usd_per_credit=float(doc["usd_per_credit"]), source=str(path), usage_prices=usage)

    def lookup(self, provider: str, model: str) -> Price:
        found = self._prices.get((provider, model)) or self._prices.get((provider, "*"))
        if found is None:
            raise UnknownPriceError(provider, model, self.source)
        return found

    def actual(
        self, provider: str, model: str, counts: Mapping[str, float], *, source: str, price_model: str | None = None
    ) -> ActualCost:
        """The cost of one call from what the provider reported (``counts``, see ``providers.receipts.Usage``).

        A usage price for the provider's model (``model``, then ``price_model``, then ``*``) prices each count it
        lists; a token count it does not list is kept as ``unpriced`` (the figure is then partial, never filled in
        with a guess). Without a usage price, a count named after the price-table unit of ``price_model`` (a video's
        ``video_seconds``) is priced at that unit's price. Anything else is reported but unpriced: ``usd`` None.
        """
        counts = {k: float(v) for k, v in counts.items()}
        basis: dict[str, Any] = {"counts": counts, "source": source}
        entry = next(
            (self._usage[(provider, m)] for m in (model, price_model or model, "*") if (provider, m) in self._usage),
            None,
        )
        usd: float | None = None
        if entry is not None:
            priced = {k: v * entry.usd_per_count[k] for k, v in counts.items() if k in entry.usd_per_count}
            unpriced = {
                k: v for k, v in counts.items() if k not in entry.usd_per_count and k.endswith("_tokens") and v > 0
            }
            if unpriced:
                basis["unpriced"] = unpriced
            if priced:
                usd = round(sum(priced.values()), 6)
                basis["price"] = f"{entry.provider}/{entry.model}: {entry.source}"
        else:
            found = self._prices.get((provider, price_model or model)) or self._prices.get((provider, "*"))
            field = _UNIT_FIELDS.get(found.unit) if found is not None else None
            if found is not None and field in counts:
                usd = round(counts[field] * found.usd_per_unit, 6)
                basis["price"] = f"{found.provider}/{found.model} per {found.unit}: {found.source}"
        credits = None if usd is None else round(usd / self.usd_per_credit, 6)
        return ActualCost(usd=usd, credits=credits, basis=basis)

    def price(self, provider: str, model: str, units: Units) -> tuple[float, float]:
        """``(credits, usd)`` for one call of ``model`` with these units."""
        p = self.lookup(provider, model)
        quantity = getattr(units, _UNIT_FIELDS[p.unit])
        if quantity < 0:
            raise ValueError(f"negative {_UNIT_FIELDS[p.unit]} for {provider}/{model}")
        usd = round(quantity * p.usd_per_unit, 6)
        return round(usd / self.usd_per_credit, 6), usd


@dataclass(frozen=True)
class LedgerRow:
    id: str
    ts: str
    run_id: str
    campaign: str
    format: str | None
    stage: str
    provider: str
    model: str
    units: Units
    credits: float
    usd: float
    saved_credits: float
    saved_usd: float
    hit: bool
    call_key: str | None
    billed: bool = False
    outcome: str = USABLE
    request_id: str | None = None
    reason: str | None = None
    actual: ActualCost | None = None


class Ledger:
    """Append-only ledger in ``db`` (a SQLite path or a :class:`StateDB`); every record is priced with ``prices``."""

    def __init__(self, db: Path | StateDB, prices: PriceTable) -> None:
        self.db = as_state_db(db)
        self.prices = prices
        self.db.create_schema(SCHEMA_SQL)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns a ledger created by an earlier version lacks (``billed``, ``outcome``, ...)."""
        with self._connect() as conn:
            cur = conn.execute("SELECT * FROM ledger_calls WHERE 1 = 0")
            have = {d[0] for d in cur.description}
            for name, sql_type, fill in _ADDED_COLUMNS:
                if name not in have:  # (IF NOT EXISTS on PostgreSQL: two workers may migrate at once)
                    guard = "IF NOT EXISTS " if self.db.kind == "postgres" else ""
                    conn.execute(f"ALTER TABLE ledger_calls ADD COLUMN {guard}{name} {sql_type}")
                    if fill:
                        conn.execute(fill)

    def _connect(self) -> contextlib.AbstractContextManager[Conn]:
        return self.db.connect()

    def record(
        self,
        *,
        run_id: str,
        campaign: str,
        stage: str,
        provider: str,
        model: str,
        units: Units,
        hit: bool,
        call_key: str | None,
        format: str | None = None,
        billed: bool | None = None,
        outcome: str = USABLE,
        request_id: str | None = None,
        reason: str | None = None,
    ) -> LedgerRow:
        """Price and append one call (``hit=False``) or cache hit (``hit=True``, costs zero, records the saving).

        ``billed`` defaults to "a hosted miss"; an answer the provider does not charge for (``billed=False``) costs
        zero. ``outcome``: see the module docstring.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown ledger outcome {outcome!r}: one of {OUTCOMES}")
        if billed is None:
            billed = not hit and provider != LOCAL_PROVIDER
        credits, usd = self.prices.price(provider, model, units)
        if not hit and not billed:
            credits, usd = 0.0, 0.0
        row = LedgerRow(
            id=uuid.uuid4().hex,
            ts=datetime.now(UTC).isoformat(timespec="microseconds"),
            run_id=run_id,
            campaign=campaign,
            format=format,
            stage=stage,
            provider=provider,
            model=model,
            units=units,
            credits=0.0 if hit else credits,
            usd=0.0 if hit else usd,
            saved_credits=credits if hit else 0.0,
            saved_usd=usd if hit else 0.0,
            hit=hit,
            call_key=call_key,
            billed=bool(billed),
            outcome=outcome,
            request_id=request_id,
            reason=reason[:600] if reason else None,
        )
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO ledger_calls (id, ts, run_id, campaign, format, stage, provider, model, units, credits,"
                " usd, saved_credits, saved_usd, hit, call_key, billed, outcome, request_id, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.id,
                    row.ts,
                    row.run_id,
                    row.campaign,
                    row.format,
                    row.stage,
                    row.provider,
                    row.model,
                    units.to_json(),
                    row.credits,
                    row.usd,
                    row.saved_credits,
                    row.saved_usd,
                    bool(row.hit),
                    row.call_key,
                    bool(row.billed),
                    row.outcome,
                    row.request_id,
                    row.reason,
                ),
            )
        return row

    def settle(self, row_id: str, *, outcome: str, reason: str | None = None, request_id: str | None = None) -> None:
        """Set what came of a paid answer recorded on arrival (``received``): usable, unparseable, blocked, ..."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown ledger outcome {outcome!r}: one of {OUTCOMES}")
        with self._connect() as conn:
            conn.execute(
                "UPDATE ledger_calls SET outcome = ?, reason = COALESCE(?, reason),"
                " request_id = COALESCE(?, request_id) WHERE id = ?",
                (outcome, reason[:600] if reason else None, request_id, row_id),
            )

    def billed_row(self, call_key: str, request_id: str) -> LedgerRow | None:
        """The billed row of ``call_key`` whose answer had ``request_id`` (a job's id), or None.

        A job finishes once and is billed once: when a later attempt of the same call waits on that job again and
        the provider reports it finished again, the attempt settles this row instead of adding a second one.
        """
        where = "call_key = ? AND request_id = ? AND billed AND NOT hit ORDER BY ts"
        return self._first_row(where, (call_key, request_id))

    def unsettled_row(self, call_key: str) -> LedgerRow | None:
        """The latest billed row of ``call_key`` still ``received``: its answer arrived and the process that received
        it stopped before settling it (every live attempt settles its rows, under the key's lock), or None."""
        return self._first_row(
            "call_key = ? AND billed AND NOT hit AND outcome = ? ORDER BY ts DESC", (call_key, RECEIVED)
        )

    def _first_row(self, where: str, params: tuple[Any, ...]) -> LedgerRow | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT id, ts, run_id, campaign, format, stage, provider, model, units, credits, usd, saved_credits,"
                " saved_usd, hit, call_key, billed, outcome, request_id, reason FROM ledger_calls"
                f" WHERE {where} LIMIT 1",
                params,
            ).fetchone()
        if row is None:
            return None
        values = list(row)
        values[8] = Units(**json.loads(values[8] or "{}"))
        values[13], values[15] = bool(values[13]), bool(values[15])
        return LedgerRow(*values)

    def set_actual(self, row_id: str, actual: ActualCost) -> None:
        """Put the actual cost (what the provider reported it used, priced) on a row, beside its estimate."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE ledger_calls SET actual_credits = ?, actual_usd = ?, actual_basis = ? WHERE id = ?",
                (actual.credits, actual.usd, json.dumps(actual.basis, sort_keys=True), row_id),
            )

    def has_paid(self, call_key: str) -> bool:
        """Whether a paid call (a miss) whose answer was usable (or not yet settled) with this key is in the ledger."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT 1 FROM ledger_calls WHERE call_key = ? AND NOT hit AND outcome IN (?, ?) LIMIT 1",
                (call_key, USABLE, RECEIVED),
            )
            return row.fetchone() is not None

    def paid_unusable(self, call_key: str) -> dict[str, Any] | None:
        """The last billed answer for this key that was unusable (unparseable, failed, blocked), or None.

        Such a call was paid for and is never re-sent automatically (a re-roll, a new seed, is a new key).
        """
        marks = ", ".join("?" for _ in UNUSABLE_PAID)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT ts, run_id, outcome, reason, request_id FROM ledger_calls WHERE call_key = ? AND billed"
                f" AND outcome IN ({marks}) ORDER BY ts DESC LIMIT 1",
                (call_key, *UNUSABLE_PAID),
            ).fetchone()
        if row is None:
            return None
        return dict(zip(("ts", "run_id", "outcome", "reason", "request_id"), row, strict=True))

    def spent(self, campaign: str | None = None) -> float:
        """Credits paid so far (cache hits cost nothing), for one campaign or all."""
        params: tuple[str, ...]
        sql, params = "SELECT COALESCE(SUM(credits), 0) FROM ledger_calls", ()
        if campaign is not None:
            sql, params = sql + " WHERE campaign = ?", (campaign,)
        with self._connect() as conn:
            return float(conn.execute(sql, params).fetchone()[0])

    def refuse(
        self,
        *,
        run_id: str,
        campaign: str,
        stage: str,
        provider: str,
        model: str,
        credits: float,
        scope: str,
        budget: float,
        spent: float,
        format: str | None = None,
    ) -> None:
        """Record a call refused by a budget (nothing was called or paid)."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO ledger_refusals (id, ts, run_id, campaign, format, stage, provider, model, credits, scope,"
                " budget, spent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uuid.uuid4().hex,
                    datetime.now(UTC).isoformat(timespec="microseconds"),
                    run_id,
                    campaign,
                    format,
                    stage,
                    provider,
                    model,
                    credits,
                    scope,
                    budget,
                    spent,
                ),
            )

    def refusals(self, campaign: str | None = None) -> pd.DataFrame:
        params: tuple[str, ...]
        sql, params = "SELECT * FROM ledger_refusals", ()
        if campaign is not None:
            sql, params = sql + " WHERE campaign = ?", (campaign,)
        with self._connect() as conn:
            return conn.frame(sql + " ORDER BY ts, id", params)

    def frame(self, campaign: str | None = None) -> pd.DataFrame:
        """All ledger rows (optionally of one campaign) with ``hit`` as bool and ``units`` parsed to dicts."""
        sql = "SELECT * FROM ledger_calls"
        params: tuple[Any, ...] = ()
        if campaign is not None:
            sql += " WHERE campaign = ?"
            params = (campaign,)
        with self._connect() as conn:
            df = conn.frame(sql + " ORDER BY ts, id", params)
        df["hit"] = df["hit"].astype(bool)
        df["billed"] = df["billed"].astype(bool)
        df["units"] = df["units"].map(json.loads)
        df["actual_basis"] = df["actual_basis"].map(lambda v: json.loads(v) if isinstance(v, str) else None)
        for col in ("actual_credits", "actual_usd"):
            df[col] = df[col].astype(float)  # NULL -> NaN (a column of NULLs would be object otherwise)
        return df

    def actual_vs_estimate(self, by: str | Sequence[str] = "provider", campaign: str | None = None) -> pd.DataFrame:
        """Estimated (price table) against actual (provider-reported) cost of the billed hosted calls, per group.

        ``billed``: billed provider rows; ``estimated_credits``: their price-table credits; ``reported``: rows whose
        provider reported a priced usage, ``estimated_reported`` their estimate and ``actual_credits`` /
        ``actual_usd`` their actual cost (None where no row reported one: "not reported"), ``difference_credits`` =
        actual - estimated_reported; ``not_reported``: billed rows without an actual figure; ``partial``: rows whose
        usage had counts no price covers (their actual is a lower bound).
        """
        keys = [by] if isinstance(by, str) else list(by)
        bad = [k for k in keys if k not in GROUPS]
        if bad or not keys:
            raise ValueError(f"group by {bad or keys}: choose from {GROUPS}")
        cols = ["billed", "estimated_credits", "reported", "estimated_reported", "actual_credits", "actual_usd"]
        cols += ["difference_credits", "not_reported", "partial"]
        df = self.frame(campaign)
        if not df.empty:
            df = df[df["billed"] & ~df["hit"] & (df["provider"] != LOCAL_PROVIDER)]
        if df.empty:
            return pd.DataFrame(columns=keys + cols)
        rows = []
        for group, part in df.groupby(keys, dropna=False):
            reported = part[part["actual_credits"].notna()]
            partial = int(sum(bool(b and b.get("unpriced")) for b in reported["actual_basis"]))
            actual = float(reported["actual_credits"].sum()) if len(reported) else None
            est_reported = float(reported["credits"].sum())
            values = group if isinstance(group, tuple) else (group,)
            rows.append(
                [
                    *values,
                    len(part),
                    round(float(part["credits"].sum()), 6),
                    len(reported),
                    round(est_reported, 6),
                    None if actual is None else round(actual, 6),
                    round(float(reported["actual_usd"].sum()), 6) if len(reported) else None,
                    None if actual is None else round(actual - est_reported, 6),
                    len(part) - len(reported),
                    partial,
                ]
            )
        out = pd.DataFrame(rows, columns=keys + cols, dtype=object)  # None stays None (not NaN): "not reported"
        for col in ("billed", "reported", "not_reported", "partial"):
            out[col] = out[col].astype(int)
        for col in ("estimated_credits", "estimated_reported"):
            out[col] = out[col].astype(float)
        return out

    def totals(self, by: str | Sequence[str] = "campaign", campaign: str | None = None) -> pd.DataFrame:
        """Spend grouped by any of campaign/stage/provider/format: calls, hits, misses, local, unusable, credits, usd,
        savings, hit_rate.

        ``local`` counts local-engine rows (reported apart: they are no provider call); ``unusable`` the billed
        answers that produced nothing (unparseable, blocked, failed, lost). ``hit_rate`` is hits over hosted rows
        (None where a group has none). A missing ``format`` is its own group (NaN), not dropped.
        """
        keys = [by] if isinstance(by, str) else list(by)
        bad = [k for k in keys if k not in GROUPS]
        if bad or not keys:
            raise ValueError(f"group by {bad or keys}: choose from {GROUPS}")
        df = self.frame(campaign)
        cols = ["calls", "hits", "misses", "local", "unusable", "credits", "usd", "saved_credits", "saved_usd"]
        cols.append("hit_rate")
        if df.empty:
            return pd.DataFrame(columns=keys + cols)
        df = df.assign(
            is_local=df["provider"] == LOCAL_PROVIDER,
            is_unusable=df["billed"] & (df["outcome"] != USABLE),
        )
        out = (
            df.groupby(keys, dropna=False)
            .agg(
                calls=("id", "count"),
                hits=("hit", "sum"),
                local=("is_local", "sum"),
                unusable=("is_unusable", "sum"),
                credits=("credits", "sum"),
                usd=("usd", "sum"),
                saved_credits=("saved_credits", "sum"),
                saved_usd=("saved_usd", "sum"),
            )
            .reset_index()
        )
        for col in ("hits", "local", "unusable"):
            out[col] = out[col].astype(int)
        out["misses"] = out["calls"] - out["hits"]
        hosted = out["calls"] - out["local"]
        rates = [None if n == 0 else h / n for h, n in zip(out["hits"], hosted, strict=True)]
        out["hit_rate"] = pd.Series(rates, index=out.index, dtype=object)
        return out[keys + cols]

    def hit_rate(self, campaign: str | None = None) -> float | None:
        """Share of hosted rows (provider calls and cache hits, not local-engine work) that were cache hits;
        None when there is none."""
        df = self.frame(campaign)
        hosted = df[df["provider"] != LOCAL_PROVIDER] if not df.empty else df
        return None if hosted.empty else float(hosted["hit"].mean())


def cached_call(
    cache: CallCache,
    ledger: Ledger,
    *,
    key: str,
    fn: Callable[[], bytes],
    run_id: str,
    campaign: str,
    stage: str,
    provider: str,
    model: str,
    units: Units,
    format: str | None = None,
    meta: Mapping[str, Any] | None = None,
    paid_row: Callable[[], str | None] | None = None,
) -> CacheResult:
    """Get-or-call through the cache and record the outcome in the ledger.

    ``paid_row`` gives the id of the row ``fn`` already wrote when the provider's answer arrived (a receipt,
    see :class:`HostedCalls`); the stored result settles that row as ``usable`` instead of adding another.

    The price is looked up first, so an unpriced model fails before anything is paid. The paid call's ledger row
    is written while the call still holds the key's lock, so a concurrent identical call that waited on the lock
    finds the row and records a hit. A crash between the paid call being stored and its ledger row leaves a cache
    entry that no ledger row paid for: the next use of that key finds it (under the key's lock, so only one user
    claims it) and is recorded as the paid call (a miss), so the spend is never lost from the ledger.
    """
    ledger.prices.price(provider, model, units)

    def record(hit: bool) -> None:
        ledger.record(
            run_id=run_id,
            campaign=campaign,
            format=format,
            stage=stage,
            provider=provider,
            model=model,
            units=units,
            hit=hit,
            call_key=key,
        )

    def stored(_: CacheResult) -> None:
        row_id = paid_row() if paid_row is not None else None
        if row_id is None:
            record(False)
        else:
            ledger.settle(row_id, outcome=USABLE)

    result = cache.get_or_call(key, fn, meta=meta, on_stored=stored)
    if result.hit:
        with cache.key_lock(key):
            orphan = not ledger.has_paid(key)  # the payer crashed before recording: this is its row
            record(hit=not orphan)
        if orphan:
            result = dataclasses.replace(result, hit=False)
    return result
