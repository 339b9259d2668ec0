#!/usr/bin/env bash
# sha256 of every deliverable and every media-store file of `media-routes demo`, rendered into a new temporary
# folder: run it before and after a refactor and diff the two outputs (byte-identical outputs give no diff).
#   bash scripts/demo_hashes.sh > before.txt; ...change...; bash scripts/demo_hashes.sh > after.txt; diff before.txt after.txt
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && DAGSTER_HOME="$work/home" PYTHONPATH="$repo" "$repo/.venv/bin/python" -m media_routes.cli demo --out "$work/out" >"$work/demo.log" 2>&1) || {
  tail -20 "$work/demo.log" >&2
  exit 1
}
(cd "$work/out" && find . -type f | sort | xargs sha256sum | sed 's#^#deliverable #')
(cd "$work/home/media" && find . -type f | sort | xargs sha256sum | sed 's#^#media #')
