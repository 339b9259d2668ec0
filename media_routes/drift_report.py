"""`media-routes drift`: each quality measure along the chain base -> motion, and where drift entered."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from media_routes.defs.resources import MediaStore
from media_routes.engine.motion import decode_frames
from media_routes.lib.imaging import decode_png
from media_routes.quality import brand


def _brand_worst(metrics: dict[str, Any]) -> float | None:
    """The worst brand colour's stroke-interior mean CIEDE2000 (a clip: over its frames)."""
    if "brand_per_frame" in metrics:
        return float(metrics["brand_per_frame"].get("max", 0.0))
    report = metrics.get("brand")
    return brand.worst(report) if report else None


def _brand_p95(metrics: dict[str, Any]) -> float | None:
    """The worst brand colour's stroke-interior per-pixel p95 (a clip: its worst frame's); None before it was kept."""
    if "brand_per_frame" in metrics:
        value = metrics["brand_per_frame"].get("interior_p95_max")
        return None if value is None else float(value)
    report = metrics.get("brand")
    if not report or not any("interior_p95" in v for v in report.values()):
        return None
    return brand.worst_p95(report)


def chain_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stage and partition with the figures that matter for drift, in pipeline order."""
    out = []
    for r in rows:
        m = r["metrics"] or {}
        d = m.get("drift") or {}
        vs_input = d.get("vs_input") or {}
        frames = d.get("frames") or {}
        failed = {k: v for k, v in (r.get("checks") or {}).items() if v != "passed"}
        out.append(
            {
                "stage": r["stage"],
                "partition": r["partition"],
                "run_id": r["run_id"],
                "brand_delta_e_max": _brand_worst(m),
                "brand_p95_max": _brand_p95(m),
                "grid_delta_e_max": vs_input.get("grid_delta_e_max"),
                "shadow_chroma_retention": vs_input.get("shadow_chroma_retention"),
                "ssim_outside": vs_input.get("ssim_outside"),
                "grid_delta_e_vs_base": (d.get("vs_base") or {}).get("grid_delta_e_mean"),
                "frame_ssim_min": frames.get("frame_ssim_min"),
                "style_drift_max": frames.get("style_drift_max"),
                "bridge_applied": bool((m.get("bridge") or {}).get("applied")),
                "bridge": m.get("bridge") if (m.get("bridge") or {}).get("applied") else None,
                "seam_delta_e": m.get("seam_delta_e"),
                "failed_checks": failed,
                "path": r["path"],
                "heatmap": r.get("drift_heatmap"),
            }
        )
    return out


def first_exceeded(chain: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first stage (pipeline order) where a check failed: where uncorrected drift entered."""
    return next((c for c in chain if c["failed_checks"]), None)


def corrected_drift(chain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stages where drift over tolerance was detected and the bridge pass pulled it back."""
    return [c for c in chain if c["bridge_applied"]]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


COLUMNS = [
    ("brand_delta_e_max", "brand dE"),
    ("brand_p95_max", "brand p95"),
    ("grid_delta_e_max", "grid dE/in"),
    ("shadow_chroma_retention", "shadow C"),
    ("ssim_outside", "SSIM"),
    ("grid_delta_e_vs_base", "grid dE/base"),
    ("frame_ssim_min", "frame SSIM"),
    ("style_drift_max", "frame dE"),
    ("seam_delta_e", "seam dE"),
]


def _thumb_png(store: MediaStore, uri_or_path: str | None, side: int = 320) -> bytes | None:
    if not uri_or_path:
        return None
    try:
        if uri_or_path.endswith(".mp4"):
            path = store.local_path(uri_or_path) if uri_or_path.startswith("file:") else Path(uri_or_path)
            frames = list(decode_frames(Path(str(path))))
            img = np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]], axis=1)
        else:
            data = store.read_bytes(uri_or_path) if "://" in uri_or_path else Path(uri_or_path).read_bytes()
            img = decode_png(data)
    except (OSError, ValueError):
        return None
    pil = Image.fromarray(img[..., :3] if img.ndim == 3 else img)
    pil.thumbnail((side * 3 if uri_or_path.endswith(".mp4") else side, side))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def write_html(chain: list[dict[str, Any]], campaign: str, store: MediaStore, out_dir: Path) -> Path:
    """A static report: per stage the output, its drift heatmap and the figures, side by side."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first = first_exceeded(chain)
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>drift: {html.escape(campaign)}</title>",
        "<style>body{font-family:sans-serif;background:#222;color:#ddd} td,th{padding:4px 8px;"
        "border-bottom:1px solid #444;vertical-align:top} img{max-width:320px} .bad{color:#f77}</style>",
        f"<h1>Drift along the chain: {html.escape(campaign)}</h1>",
        "<p>"
        + (
            f"First tolerance exceeded at <b class='bad'>{html.escape(first['stage'])} "
            f"[{html.escape(first['partition'])}]</b>: {html.escape('; '.join(first['failed_checks'].values()))}"
            if first
            else "Every check passed along the chain."
        )
        + "</p><table><tr><th>stage</th><th>output</th><th>drift heatmap (vs input)</th><th>figures</th></tr>",
    ]
    for i, c in enumerate(chain):
        cells = []
        for key, src in (("out", c["path"]), ("heat", c["heatmap"])):
            png = _thumb_png(store, src)
            if png:
                name = f"{i:02d}-{c['stage']}-{key}.png"
                (out_dir / name).write_bytes(png)
                cells.append(f"<img src='{name}'>")
            else:
                cells.append("-")
        figures = "<br>".join(f"{label}: {_fmt(c[key])}" for key, label in COLUMNS if c[key] is not None)
        if c["bridge_applied"]:
            figures += "<br>bridge pass applied"
        for name, why in c["failed_checks"].items():
            figures += f"<br><span class='bad'>{html.escape(name)}: {html.escape(why)}</span>"
        parts.append(
            f"<tr><td>{html.escape(c['stage'])}<br><small>{html.escape(c['partition'])}</small></td>"
            f"<td>{cells[0]}</td><td>{cells[1]}</td><td>{figures}</td></tr>"
        )
    parts.append("</table>")
    target = out_dir / "index.html"
    target.write_text("\n".join(parts), encoding="utf-8")
    return target
