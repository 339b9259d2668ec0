"""Actual cost beside the estimate (issue #14 item 4): what each provider's contract reports per call, priced, in the
ledger next to the price-table estimate; "not reported" where a contract reports nothing.

The adapters run against the local stubs over real sockets (no Dagster run): Gemini's ``usageMetadata`` (also on an
IMAGE_SAFETY block), Veo's seconds (read from the returned video), Kling's ``final_unit_deduction``, fal (nothing).
The expected figures are computed here from the contract's prices (provider-contracts.md), not read back from the
code under test.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from media_routes.cli import actual_vs_estimate_table, strict_json
from media_routes.credits.ledger import Ledger, PriceTable, Units
from media_routes.defs.providers import FalResource, GeminiResource, KlingResource, ProviderHub
from media_routes.providers.errors import ContentBlocked
from media_routes.providers.gemini import usage_counts
from media_routes.routing.execute import HostedCalls
from media_routes.routing.router import Candidate
from media_routes.testing.stubs.fal_stub import FalStub
from media_routes.testing.stubs.google_stub import GoogleStub
from media_routes.testing.stubs.kling_stub import KlingStub

log = logging.getLogger(__name__)
GEMINI_KEY = "gm-test-actual-0123456789"
FAL_KEY = "fal-id:fal-secret-0123456789"
KLING_AK, KLING_SK = "kling-ak-actual", "kling-sk-actual-0123456789abcdef0123456"

PRO = Candidate(
    route="google/gemini-3-pro-image-preview",
    provider="google",
    model="gemini-3-pro-image-preview",
    units=Units(images=1),
    credits=13.4,
)
VEO = Candidate(
    route="google/veo-3.1-generate-preview",
    provider="google",
    model="veo-3.1-generate-preview",
    price_model="veo-3.1",
    units=Units(video_seconds=6),
    credits=240.0,
)
KLING = Candidate(
    route="kling/kling-v2-5-turbo", provider="kling", model="kling-v2-5-turbo", units=Units(video_seconds=10)
)
ESRGAN = Candidate(route="fal/fal-ai/esrgan", provider="fal", model="fal-ai/esrgan", units=Units(megapixels=1))

# the contract's prices (provider-contracts.md, sections 1-3), per token / second / unit, in USD
PRO_INPUT, PRO_TEXT, PRO_IMAGE = 2.0 / 1e6, 12.0 / 1e6, 120.0 / 1e6
VEO_PER_S = 0.40
KLING_UNIT = 0.14


def _png(w: int = 320, h: int = 320) -> bytes:
    rng = np.random.default_rng(3)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _hub(tmp_path: Path, google: GoogleStub | None = None, fal: FalStub | None = None, kling: KlingStub | None = None):  # type: ignore[no-untyped-def]
    return ProviderHub(
        gemini=GeminiResource(api_key=GEMINI_KEY, base_url=google.url if google else "http://127.0.0.1:9"),
        fal=FalResource(
            api_key=FAL_KEY, queue_url=fal.url if fal else "http://127.0.0.1:9", base_url=fal.url if fal else "",
            poll_interval_s=0.01,
        ),
        kling=KlingResource(
            access_key=KLING_AK, secret_key=KLING_SK, base_url=kling.url if kling else "http://127.0.0.1:9"
        ),
        state_dir=str(tmp_path / "state"),
        retry_base_delay_s=0.0,
        retry_budget_s=5.0,
    )  # fmt: skip


def _calls(hub: ProviderHub, stage: str = "base_composition") -> HostedCalls:
    return HostedCalls(hub=hub, run_id="run-1", campaign="c", stage=stage, format_key=None, log=log)


def _paid_rows(hub: ProviderHub) -> Any:
    frame = hub.ledger().frame("c")
    return frame[~frame["hit"]]


# -- pricing what is reported ---------------------------------------------------------------------------------


def test_usage_metadata_becomes_token_counts_by_modality() -> None:
    usage = {
        "promptTokenCount": 1290,
        "candidatesTokenCount": 1130,
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 10}, {"modality": "IMAGE", "tokenCount": 1120}],
        "thoughtsTokenCount": 200,
        "totalTokenCount": 2620,
    }
    assert usage_counts(usage) == {
        "input_tokens": 1290,
        "output_image_tokens": 1120,
        "output_text_tokens": 10,
        "thoughts_tokens": 200,
    }
    # no modality split: the candidates' tokens are not guessed into image or text
    assert usage_counts({"promptTokenCount": 5, "candidatesTokenCount": 7}) == {
        "input_tokens": 5,
        "unsplit_output_tokens": 7,
    }
    assert usage_counts({}) == {} and usage_counts({"promptTokenCount": "x"}) == {}


def test_the_price_table_prices_reported_usage_and_never_guesses_what_it_cannot_price() -> None:
    prices = PriceTable.from_yaml()
    counts = {"input_tokens": 1290, "output_image_tokens": 1120, "output_text_tokens": 10, "thoughts_tokens": 200}
    pro = prices.actual("google", "gemini-3-pro-image-preview", counts, source="usageMetadata")
    expected = 1290 * PRO_INPUT + 210 * PRO_TEXT + 1120 * PRO_IMAGE
    assert pro.usd == pytest.approx(expected) and pro.credits == pytest.approx(expected / 0.01) and not pro.partial
    # the 4K price model of the same API model uses the same token prices
    four_k = prices.actual(
        "google", PRO.model, counts, source="usageMetadata", price_model="gemini-3-pro-image-preview@4K"
    )
    assert four_k.usd == pro.usd
    # Nano Banana: the contract prices input and image output only; its text tokens stay unpriced (a lower bound)
    flash = prices.actual("google", "gemini-2.5-flash-image", counts, source="usageMetadata")
    assert flash.usd == pytest.approx(1290 * 0.30 / 1e6 + 1120 * 30 / 1e6)
    assert flash.partial and flash.basis["unpriced"] == {"output_text_tokens": 10, "thoughts_tokens": 200}
    veo = prices.actual("google", "veo-3.1-generate-preview", {"video_seconds": 6.0}, source="x", price_model="veo-3.1")
    assert veo.usd == pytest.approx(6 * VEO_PER_S)
    kling = prices.actual("kling", "kling-v2-5-turbo", {"units_deducted": 3, "video_seconds": 10}, source="x")
    assert kling.usd == pytest.approx(3 * KLING_UNIT) and not kling.partial
    fal = prices.actual("fal", "fal-ai/esrgan", {"inference_time_s": 0.01}, source="metrics.inference_time")
    assert fal.usd is None and fal.credits is None  # reported, but no price: not a cost figure
    unsplit = prices.actual("google", "gemini-3-pro-image-preview", {"unsplit_output_tokens": 9}, source="x")
    assert unsplit.usd is None and unsplit.basis["unpriced"] == {"unsplit_output_tokens": 9}


def test_a_ledger_from_before_the_actual_columns_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as conn:  # the table as the previous release (billed .. reason) created it
        conn.execute(
            "CREATE TABLE ledger_calls (id VARCHAR(32) PRIMARY KEY, ts VARCHAR(40) NOT NULL, run_id TEXT NOT NULL,"
            " campaign TEXT NOT NULL, format TEXT NULL, stage TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT"
            " NULL, units TEXT NOT NULL, credits DOUBLE PRECISION NOT NULL, usd DOUBLE PRECISION NOT NULL,"
            " saved_credits DOUBLE PRECISION NOT NULL, saved_usd DOUBLE PRECISION NOT NULL, hit BOOLEAN NOT NULL,"
            " call_key VARCHAR(64) NULL, billed BOOLEAN NOT NULL DEFAULT FALSE, outcome VARCHAR(16) NOT NULL DEFAULT"
            " 'usable', request_id TEXT NULL, reason TEXT NULL)"
        )
        conn.execute(
            "INSERT INTO ledger_calls VALUES ('old', '2026-01-01', 'r', 'c', NULL, 's', 'google',"
            " 'gemini-3-pro-image-preview', '{\"images\": 1}', 13.4, 0.134, 0, 0, 0, 'k', 1, 'usable', NULL, NULL)"
        )
    ledger = Ledger(path, PriceTable.from_yaml())
    frame = ledger.frame()
    assert frame["actual_credits"].isna().all() and frame["actual_basis"].isna().all()
    (row,) = ledger.actual_vs_estimate().to_dict(orient="records")
    assert row["billed"] == 1 and row["not_reported"] == 1 and row["actual_credits"] is None
    assert row["estimated_credits"] == pytest.approx(13.4)
    Ledger(path, PriceTable.from_yaml())  # opening again changes nothing


# -- the adapters against the stubs ---------------------------------------------------------------------------


def test_a_gemini_answer_records_its_usage_metadata_as_the_actual_cost(tmp_path: Path) -> None:
    with GoogleStub(api_key=GEMINI_KEY) as google:
        hub = _hub(tmp_path, google=google)
        calls = _calls(hub)
        src = _png()
        with hub.gemini.image_client() as client:
            calls.call(
                PRO, op="edit", params={"p": 1}, inputs={}, seed=1, units=Units(images=1),
                fn=lambda: client.edit("Render it.", model=PRO.model, image_png=src, seed=1).data,
            )  # fmt: skip
    (row,) = _paid_rows(hub).to_dict(orient="records")
    counts = row["actual_basis"]["counts"]
    # a 3 Pro image at 1K: 1120 output image tokens per the contract; one input image counted in the prompt
    assert counts["output_image_tokens"] == 1120 and counts["input_tokens"] > 258
    text_tokens = counts["output_text_tokens"] + counts["thoughts_tokens"]
    expected = counts["input_tokens"] * PRO_INPUT + text_tokens * PRO_TEXT + 1120 * PRO_IMAGE
    assert row["actual_usd"] == pytest.approx(expected) and row["actual_credits"] == pytest.approx(expected / 0.01)
    assert row["credits"] == pytest.approx(13.4) and row["outcome"] == "usable"
    assert row["actual_basis"]["source"] == "usageMetadata"
    (detail,) = calls.summary()["detail"]
    assert detail["actual_credits"] == pytest.approx(row["actual_credits"])


def test_an_image_safety_block_with_usage_metadata_is_billed_with_its_actual_cost(tmp_path: Path) -> None:
    with GoogleStub(api_key=GEMINI_KEY) as google:
        google.fail_next("image_safety", route="generateContent")
        hub = _hub(tmp_path, google=google)
        calls = _calls(hub)
        with hub.gemini.image_client() as client, pytest.raises(ContentBlocked):
            calls.call(
                PRO, op="generate", params={"p": 2}, inputs={}, seed=1, units=Units(images=1),
                fn=lambda: client.generate("A poster.", model=PRO.model, aspect_ratio="1:1", image_size="1K").data,
            )  # fmt: skip
        assert google.billable_answers == 1
    (row,) = _paid_rows(hub).to_dict(orient="records")
    assert (row["billed"], row["outcome"]) == (True, "blocked")
    counts = row["actual_basis"]["counts"]
    assert counts["output_image_tokens"] == 1120  # the blocked image's tokens, as the stub's usageMetadata says
    text_tokens = counts["output_text_tokens"] + counts["thoughts_tokens"]
    expected = counts["input_tokens"] * PRO_INPUT + text_tokens * PRO_TEXT + counts["output_image_tokens"] * PRO_IMAGE
    assert row["actual_credits"] == pytest.approx(expected / 0.01)
    (detail,) = calls.summary()["detail"]
    assert detail["outcome"] == "blocked" and detail["actual_credits"] == pytest.approx(row["actual_credits"])


def test_a_truncated_answer_has_no_actual_cost_not_reported(tmp_path: Path) -> None:
    with GoogleStub(api_key=GEMINI_KEY) as google:
        google.fail_next("truncated", route="generateContent")
        hub = _hub(tmp_path, google=google)
        with hub.gemini.image_client() as client, pytest.raises(Exception, match="not JSON"):
            _calls(hub).call(
                PRO, op="generate", params={"p": 3}, inputs={}, seed=1, units=Units(images=1),
                fn=lambda: client.generate("A poster.", model=PRO.model, aspect_ratio="1:1", image_size="1K").data,
            )  # fmt: skip
    (row,) = _paid_rows(hub).to_dict(orient="records")
    assert row["outcome"] == "unparseable" and row["billed"] and np.isnan(row["actual_credits"])
    assert row["actual_basis"] is None


def test_veo_seconds_kling_units_and_fal_not_reported(tmp_path: Path) -> None:
    with (
        GoogleStub(api_key=GEMINI_KEY) as google,
        KlingStub(access_key=KLING_AK, secret_key=KLING_SK) as kling,
        FalStub(api_key=FAL_KEY) as fal,
    ):
        google.polls_until_done = 1
        hub = _hub(tmp_path, google=google, fal=fal, kling=kling)
        still = _png(640, 360)
        with hub.gemini.veo_client() as veo:

            def veo_call() -> bytes:
                name = veo.start("push in", model=VEO.model, image_png=still, duration_s=6, aspect_ratio="16:9")
                return veo.video_bytes(veo.wait(name, poll_interval_s=0.01, timeout_s=30))

            _calls(hub, "motion").call(
                VEO, op="i2v", params={}, inputs={}, seed=1, units=Units(video_seconds=6), fn=veo_call
            )
        with hub.kling.client() as client:

            def kling_call() -> bytes:
                task = client.image_to_video(still, prompt="push in", model_name=KLING.model, duration="10")
                return client.video_bytes(client.wait(task, poll_interval_s=0.01, timeout_s=30, model=KLING.model))

            _calls(hub, "motion").call(
                KLING, op="i2v", params={}, inputs={}, seed=1, units=Units(video_seconds=10), fn=kling_call
            )
        with hub.fal.client() as client:
            _calls(hub, "k_upscale").call(
                ESRGAN, op="upscale", params={}, inputs={}, seed=1, units=Units(megapixels=1),
                fn=lambda: client.upscale(still, model="fal-ai/esrgan", factor=2),
            )  # fmt: skip
    rows = {r["provider"]: r for r in _paid_rows(hub).to_dict(orient="records")}
    # Veo: 6 s generated (read from the returned MP4), $0.40/s
    assert rows["google"]["actual_basis"]["counts"] == {"video_seconds": 6.0}
    assert rows["google"]["actual_usd"] == pytest.approx(6 * VEO_PER_S)
    # Kling: the adapter sends mode std; the contract's table gives v2.5-turbo std 10 s $0.42 = 3 units
    assert rows["kling"]["actual_basis"]["counts"]["units_deducted"] == 3
    assert rows["kling"]["actual_usd"] == pytest.approx(3 * KLING_UNIT)
    assert rows["kling"]["usd"] == pytest.approx(10 * 0.07)  # the estimate prices the pro rate
    # fal: its queue contract reports an inference time, no cost
    assert np.isnan(rows["fal"]["actual_credits"])
    assert rows["fal"]["actual_basis"]["counts"] == {"inference_time_s": 0.01}

    report = hub.ledger().actual_vs_estimate().set_index("provider")
    assert report.loc["kling", "difference_credits"] == pytest.approx(42 - 70)
    assert report.loc["google", "difference_credits"] == pytest.approx(0)  # 6 s asked, 6 s generated
    assert report.loc["fal", "actual_credits"] is None and report.loc["fal", "not_reported"] == 1
    data = json.loads(
        strict_json(hub.ledger().actual_vs_estimate().to_dict(orient="records")),
        parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"),
    )
    assert {r["provider"]: r["actual_credits"] for r in data} == {"fal": None, "google": 240.0, "kling": 42.0}
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(actual_vs_estimate_table(hub.ledger().actual_vs_estimate()))
    text = console.export_text()
    fal_line = next(line for line in text.splitlines() if " fal " in line)
    assert "not reported" in fal_line
    assert "42 for 1 call(s) estimated at 70" in text
