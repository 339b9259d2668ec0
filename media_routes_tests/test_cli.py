"""The `media-routes` command line: validate, demo (small campaigns), trace --json, reroll."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from media_routes.cli import main
from media_routes.testing.campaigns import EXAMPLES

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(h))
    monkeypatch.setenv("MEDIA_ROUTES_MEDIA_ROOT", str(tmp_path / "media"))
    return h


def test_validate_examples_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLES)]) == 0
    assert "ok" in capsys.readouterr().out


def test_validate_reports_errors_and_exits_nonzero(campaigns_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = campaigns_dir / "tower" / "campaign.yaml"
    spec.write_text(spec.read_text().replace("#A9C6DD", "#A9C6DZ"))
    assert main(["validate", str(campaigns_dir)]) == 1
    text = capsys.readouterr().out
    assert "INVALID" in text and str(spec) in text and "palette" in text and "hex" in text
    assert main(["validate", str(campaigns_dir / "shoe")]) == 0


def test_validate_reuses_the_spec_index_for_unchanged_specs(
    home: Path, campaigns_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from media_routes import spec, spec_index

    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setattr(spec_index, "RACY_NS", 0)  # as if the specs were written long ago (else re-hashed once)
    bad = campaigns_dir / "tower" / "campaign.yaml"
    bad.write_text(bad.read_text().replace("#A9C6DD", "#A9C6DZ"))
    assert main(["validate", str(campaigns_dir)]) == 1
    first = capsys.readouterr().out
    assert "2 spec(s): 0 unchanged since they were last checked" in first

    parses = []
    real = spec.read_yaml  # every spec parse goes through it
    monkeypatch.setattr(spec, "read_yaml", lambda *a, **k: parses.append(1) or real(*a, **k))
    assert main(["validate", str(campaigns_dir)]) == 1
    second = capsys.readouterr().out
    assert "2 spec(s): 2 unchanged" in second and parses == []
    # the same verdicts, read from the index: ok lines and the invalid spec's field and reason
    assert [line for line in second.splitlines() if "2 spec(s)" not in line] == [
        line for line in first.splitlines() if "2 spec(s)" not in line
    ]
    bad.write_text(bad.read_text().replace("#A9C6DZ", "#A9C6DD"))
    assert main(["validate", str(campaigns_dir)]) == 0
    assert "2 spec(s): 1 unchanged since they were last checked (spec index in" in capsys.readouterr().out
    assert len(parses) == 1
    assert main(["validate", "--full", str(campaigns_dir)]) == 0 and len(parses) == 3


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope" / "campaign.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().out


@pytest.mark.integration
def test_demo_trace_reroll(home: Path, campaigns_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "deliverables"
    rc = main(["demo", "--out", str(out_dir), "--campaign", "tower", "--campaigns-dir", str(campaigns_dir)])
    assert rc == 0
    assert (home / "dagster.yaml").is_file()  # the local instance was created in DAGSTER_HOME
    assert (out_dir / "tower" / "16x9" / "still.png").stat().st_size > 10_000
    assert (out_dir / "tower" / "16x9" / "motion.mp4").stat().st_size > 10_000
    assert (out_dir / "tower" / "contact_sheet.png").is_file()
    capsys.readouterr()

    # a daemon started afterwards finds the spec already recorded: its sensor has nothing to re-run
    import dagster as dg

    from media_routes.defs.campaign_specs import last_observed
    from media_routes.spec import load_campaign
    from media_routes.spec_slices import stage_slice_hashes

    with dg.DagsterInstance.get() as instance:
        tower = load_campaign(campaigns_dir / "tower" / "campaign.yaml")
        assert {s: last_observed(instance, "tower", s) for s in stage_slice_hashes(tower)} == stage_slice_hashes(tower)

    assert main(["trace", "tower", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["stage"] for r in rows] == [
        "base_composition",
        "lighting_iteration",
        "inpaint_fix",
        "k_upscale",
        "aspect_outpaint",
        "motion",
    ]
    for r in rows:
        for key in (
            "stage",
            "partition",
            "run_id",
            "timestamp",
            "provider",
            "model",
            "seed",
            "data_version",
            "path",
            "metrics",
        ):
            assert key in r and r[key] is not None, (key, r)
    assert rows[-1]["partition"] == "tower|16x9"
    first_motion_run = rows[-1]["run_id"]

    rc = main(["reroll", "motion", "--campaign", "tower", "--seed", "3", "--campaigns-dir", str(campaigns_dir)])
    assert rc == 0
    capsys.readouterr()
    main(["trace", "tower", "--json"])
    after = {r["stage"]: r for r in json.loads(capsys.readouterr().out)}
    assert after["motion"]["run_id"] != first_motion_run and after["motion"]["seed"] == 3
    assert after["base_composition"]["run_id"] == rows[0]["run_id"]  # upstream untouched

    assert main(["drift", "tower", "--json", "--html", str(tmp_path / "report")]) == 0
    text = capsys.readouterr().out
    report = json.loads(text[: text.rindex("}") + 1])
    assert report["first_exceeded"] is None and report["corrected"] == []
    assert [c["stage"] for c in report["chain"]][:4] == [
        "base_composition",
        "lighting_iteration",
        "inpaint_fix",
        "k_upscale",
    ]
    assert all(c["brand_delta_e_max"] <= 1.0 for c in report["chain"])
    html = (tmp_path / "report" / "index.html").read_text()
    assert "Every check passed" in html and html.count("<img") >= 10


def test_reroll_unregistered_campaign(home: Path, campaigns_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reroll", "inpaint_fix", "--campaign", "shoe", "--campaigns-dir", str(campaigns_dir)]) == 1
    assert "no partition yet" in capsys.readouterr().err


def test_trace_unknown_format(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse: before any work
        main(["trace", "tower", "--format", "5x4"])
    assert exited.value.code == 2
    assert "unknown format" in capsys.readouterr().err


def test_estimate_and_costs_commands(home: Path, campaigns_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the example campaigns route everything to the local engine: nothing to pay, and a budget shown
    spec = campaigns_dir / "shoe" / "campaign.yaml"
    spec.write_text(spec.read_text() + "budget: {credits: 25}\n")
    assert main(["estimate", "shoe", "--campaigns-dir", str(campaigns_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["to_pay"] == 0 and data["budget"] == 25
    assert {r["status"] for r in data["rows"]} == {"local"}
    assert main(["costs"]) == 1  # an empty ledger says so
    captured = capsys.readouterr()
    assert "no calls yet" in captured.out + captured.err
