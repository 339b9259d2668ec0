"""CIEDE2000 against the published test pairs, and the brand colour lock."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from media_routes.lib.imaging import hex_to_rgb, lab_to_srgb, srgb_to_lab
from media_routes.quality import brand
from media_routes.quality.delta_e import delta_e00

DATA = Path(__file__).parent / "data" / "ciede2000_sharma2005.csv"


def _pairs() -> list[dict[str, float]]:
    with DATA.open() as fh:
        rows = [line for line in fh if not line.startswith("#")]
    return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(rows)]


def test_ciede2000_matches_sharma_wu_dalal_2005() -> None:
    pairs = _pairs()
    assert len(pairs) == 34
    lab1 = np.array([[p["L1"], p["a1"], p["b1"]] for p in pairs])
    lab2 = np.array([[p["L2"], p["a2"], p["b2"]] for p in pairs])
    expected = np.array([p["dE00"] for p in pairs])
    got = delta_e00(lab1, lab2)
    np.testing.assert_allclose(got, expected, atol=1e-4)  # the table gives 4 decimals
    np.testing.assert_allclose(delta_e00(lab2, lab1), expected, atol=1e-4)  # symmetric


PALETTE = brand.Palette.from_dict({"electric_yellow": "#F5D90A", "deep_blue": "#0B1F4B"})


def _card() -> tuple[np.ndarray, np.ndarray]:
    """A deep-blue card with a textured yellow bar: (image, label map)."""
    img = np.zeros((120, 160, 3), np.uint8)
    img[:] = hex_to_rgb("#0B1F4B")
    img[40:80, 20:140] = hex_to_rgb("#F5D90A")
    rng = np.random.default_rng(0)
    img[40:80, 20:140] = np.clip(img[40:80, 20:140].astype(int) + rng.integers(-6, 7, (40, 120, 1)), 0, 255)
    return img, brand.locate(img, PALETTE)


def test_locate_finds_both_brand_colours() -> None:
    img, labels = _card()
    assert set(np.unique(labels)) == {0, 1, 2} or set(np.unique(labels)) == {1, 2}
    assert (labels[50:70, 30:130] == 1).mean() > 0.5  # yellow bar (texture pushes some pixels past 2.0)
    assert (labels[5:30, 5:150] == 2).all()


def test_measure_then_correct_restores_a_drifted_brand_colour() -> None:
    img, labels = _card()
    lab = srgb_to_lab(img)
    lab[..., 2] -= 12  # a secondary model shifts b* (yellow goes olive, blue goes bluer) and darkens
    lab[..., 0] -= 6
    drifted = lab_to_srgb(lab)
    before = brand.measure(drifted, labels, PALETTE)
    assert brand.worst(before) > 3
    fixed = brand.correct(drifted, labels, PALETTE)
    after = brand.measure(fixed, labels, PALETTE)
    assert brand.worst(after) <= 1.0, after
    # texture (luminance detail) is kept: the bar's L* spread survives the correction
    inside = labels == 1
    spread = lambda im: float(srgb_to_lab(im)[..., 0][inside].std())  # noqa: E731
    assert spread(fixed) == pytest.approx(spread(drifted), rel=0.35)
    assert spread(fixed) > 0.5


def test_measure_reports_mean_p95_max() -> None:
    img, labels = _card()
    rep = brand.measure(img, labels, PALETTE)
    assert set(rep) == {"electric_yellow", "deep_blue"}
    for v in rep.values():
        assert v["mean"] <= v["p95"] <= v["max"]
        assert v["region_mean_delta_e"] < 1.0
