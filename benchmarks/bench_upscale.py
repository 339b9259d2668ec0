"""Benchmark: 1K -> 4K ``upscale()`` against plain ``cv2.resize(INTER_LANCZOS4)``.

Method
------
Each measurement runs in a fresh child process (``python bench_upscale.py --child <method>``) so that
peak RSS is that method's alone: the child imports numpy, OpenCV and ``media_routes.engine.k_upscale``
(same imports for every method), builds the same deterministic 1024x1024 synthetic test image
(gradients, edges, noise, a skin-toned disc), times the operation with ``time.perf_counter`` and reports
``VmHWM`` (peak resident set size) from ``/proc/self/status`` together with ``VmRSS`` just before the
operation. "over idle" compares peaks with the ``idle`` child, whose own peak already includes the float
temporaries used to build the test image, so it understates the operation's footprint; "peak-before" is
the growth from the RSS right before the operation to the peak, the better estimate of its working set.
Methods:

* ``idle``     - imports + test image only: the floor every child pays;
* ``lanczos``  - baseline, ``cv2.resize(img, (4096, 4096), interpolation=INTER_LANCZOS4)``;
* ``upscale``  - ``upscale(img, 4096)`` with default settings (detail 0.6, skin guard, 512-px tiles);
* ``upscale_d0`` - ``upscale(img, 4096, detail=0)``: tiled Lanczos alone, shows the tiling overhead.

Each method runs ``--repeat`` times (default 3); the table shows the median time and the largest peak
RSS. Ratios are against the Lanczos baseline measured in the same run. Nothing here asserts on time.
Results go to ``benchmarks/results/bench_upscale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

METHODS = ("idle", "lanczos", "upscale_d0", "upscale")
TARGET = 4096
RSS_BUDGET_MB = 1024


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{key} not found in /proc/self/status")


def _test_image():
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    n = 1024
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    img = np.stack([30 + 190 * xx / n, 200 - 150 * yy / n, 90 + 60 * np.sin(xx / 37)], axis=-1)
    img = np.ascontiguousarray(img)
    cv2.circle(img, (350, 400), 180, (205, 150, 125), -1)  # skin tone
    for i in range(12):
        cv2.line(img, (600, 60 + 70 * i), (1000, 90 + 70 * i), (20, 20, 20), 1 + i % 3)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    cv2.putText(out, "K-LEVEL", (80, 900), cv2.FONT_HERSHEY_SIMPLEX, 4, (250, 250, 250), 8)
    return out


def child(method: str) -> None:
    import cv2

    from media_routes.engine.k_upscale import upscale

    img = _test_image()
    metrics: dict = {}
    rss_before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    if method == "lanczos":
        out = cv2.resize(img, (TARGET, TARGET), interpolation=cv2.INTER_LANCZOS4)
    elif method == "upscale":
        res = upscale(img, TARGET)
        out, metrics = res.image, res.metrics
    elif method == "upscale_d0":
        out = upscale(img, TARGET, detail=0.0).image
    elif method == "idle":
        out = img
    else:
        raise SystemExit(f"unknown method {method}")
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "method": method,
                "time_s": elapsed,
                "peak_rss_mb": _status_mb("VmHWM"),
                "rss_before_mb": rss_before,
                "shape": list(out.shape),
                "metrics": metrics,
            }
        )
    )


def run_child(method: str) -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run([sys.executable, __file__, "--child", method], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"child {method} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=METHODS)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return

    rows: dict[str, dict] = {}
    for method in METHODS:
        runs = [run_child(method) for _ in range(args.repeat)]
        rows[method] = {
            "time_s_median": statistics.median(r["time_s"] for r in runs),
            "time_s_all": [r["time_s"] for r in runs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "rss_before_mb": max(r["rss_before_mb"] for r in runs),
            "shape": runs[0]["shape"],
            "metrics": runs[-1]["metrics"],
        }
    base_t = rows["lanczos"]["time_s_median"]
    idle_rss = rows["idle"]["peak_rss_mb"]
    for r in rows.values():
        r["time_ratio_vs_lanczos"] = r["time_s_median"] / base_t if base_t else None
        r["rss_over_idle_mb"] = r["peak_rss_mb"] - idle_rss
        r["peak_minus_rss_before_mb"] = r["peak_rss_mb"] - r["rss_before_mb"]

    print(f"1024x1024 -> {TARGET}x{TARGET}, {args.repeat} runs each, cpus={os.cpu_count()}")
    print(
        f"{'method':<12} {'time s':>8} {'x lanczos':>10} {'peak RSS MB':>12} {'over idle MB':>13} "
        f"{'peak-before MB':>15}"
    )
    for name, r in rows.items():
        print(
            f"{name:<12} {r['time_s_median']:>8.3f} {r['time_ratio_vs_lanczos']:>10.2f} "
            f"{r['peak_rss_mb']:>12.1f} {r['rss_over_idle_mb']:>13.1f} {r['peak_minus_rss_before_mb']:>15.1f}"
        )
    ok = rows["upscale"]["peak_rss_mb"] <= RSS_BUDGET_MB
    print(
        f"upscale peak RSS {rows['upscale']['peak_rss_mb']:.1f} MB; budget {RSS_BUDGET_MB} MB: "
        f"{'within' if ok else 'OVER'}"
    )
    print("upscale metrics:", json.dumps(rows["upscale"]["metrics"]))

    out = {
        "benchmark": "bench_upscale",
        "input": [1024, 1024],
        "target_long_side": TARGET,
        "repeat": args.repeat,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "rss_budget_mb": RSS_BUDGET_MB,
        "upscale_within_rss_budget": ok,
        "results": rows,
    }
    path = Path(__file__).resolve().parent / "results" / "bench_upscale.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
