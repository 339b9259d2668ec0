"""Export the latest deliverables of a campaign: still.png and motion.mp4 per format, a contact sheet."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from media_routes.defs.resources import MediaStore
from media_routes.engine.base_composition import FONTS_DIR
from media_routes.lib.imaging import decode_png, encode_png
from media_routes.lineage import latest_metadata
from media_routes.spec import Campaign
from media_routes.stages import CAMPAIGN_STAGES, MOTION, STILL_STAGE, campaign_format_key


@dataclass
class Exported:
    formats: dict[str, dict[str, Path]] = field(default_factory=dict)
    contact_sheet: Path | None = None


def _copy(store: MediaStore, uri: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(store.read_bytes(uri))
    tmp.replace(target)
    return target


def _thumb(img: np.ndarray, height: int) -> Image.Image:
    pil = Image.fromarray(img[..., :3])
    w = max(1, round(pil.width * height / pil.height))
    return pil.resize((w, height), Image.Resampling.LANCZOS)


def contact_sheet(rows: list[list[tuple[str, np.ndarray]]], title: str, height: int = 240) -> np.ndarray:
    """Labelled thumbnails, one row per list, on a neutral grey sheet."""
    font = ImageFont.truetype(str(FONTS_DIR / "DejaVuSans.ttf"), 14)
    title_font = ImageFont.truetype(str(FONTS_DIR / "DejaVuSans-Bold.ttf"), 18)
    pad, label_h = 12, 22
    thumbs = [[(label, _thumb(img, height)) for label, img in row] for row in rows if row]
    width = max(sum(t.width + pad for _, t in row) + pad for row in thumbs)
    sheet_h = 40 + sum(height + label_h + pad for _ in thumbs) + pad
    sheet = Image.new("RGB", (width, sheet_h), (46, 46, 46))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 10), title, font=title_font, fill=(235, 235, 235))
    y = 40
    for row in thumbs:
        x = pad
        for label, t in row:
            sheet.paste(t, (x, y))
            draw.text((x, y + height + 3), label, font=font, fill=(210, 210, 210))
            x += t.width + pad
        y += height + label_h + pad
    return np.asarray(sheet)


def export_deliverables(instance: dg.DagsterInstance, store: MediaStore, campaign: Campaign, out_dir: Path) -> Exported:
    result = Exported()
    base = out_dir / campaign.id
    stage_row: list[tuple[str, np.ndarray]] = []
    for stage in CAMPAIGN_STAGES:
        meta = latest_metadata(instance, stage, campaign.id)
        if meta is not None and meta.uri:
            stage_row.append((stage, decode_png(store.read_bytes(meta.uri))))
    format_row: list[tuple[str, np.ndarray]] = []
    for fmt in campaign.spec.formats:
        key = campaign_format_key(campaign.id, fmt)
        files: dict[str, Path] = {}
        still = latest_metadata(instance, STILL_STAGE, key)
        if still is not None and still.uri:
            files["still"] = _copy(store, still.uri, base / fmt / "still.png")
            format_row.append((f"{fmt} still", decode_png(files["still"].read_bytes())))
        video = latest_metadata(instance, MOTION, key)
        if video is not None and video.uri:
            files["motion"] = _copy(store, video.uri, base / fmt / "motion.mp4")
        result.formats[fmt] = files
    if stage_row or format_row:
        sheet = contact_sheet([stage_row, format_row], f"{campaign.id}: {campaign.spec.brief.strip()[:90]}")
        target = base / "contact_sheet.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encode_png(sheet))
        result.contact_sheet = target
    return result
