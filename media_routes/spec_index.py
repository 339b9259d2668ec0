"""The spec index: what the control plane knows about every campaign folder, without re-reading it.

One entry per ``campaigns/<id>/``: the fingerprint of the spec and of every file it names (size,
mtime, inode; and a content digest), the validation result, the stage slice hashes, the formats,
the approval and refresh settings, and whether the campaign folder sensor has registered and
observed it. A tick :func:`scan` s the folder (one ``stat`` per file) and re-reads only what changed;
an unchanged tick parses nothing.

The index lives in the Dagster instance's key-value store (``instance.daemon_cursor_storage``:
the ``kvs`` table of the run storage, SQLite locally, Postgres in production), so the sensor, the
automation condition, the schedule (all in the code server) and the command line read the same
one. It is split into :data:`SHARDS` values by campaign id, so an edit rewrites one shard (about
150 KB at 10,000 campaigns), and a ``generation`` key lets a long-lived process keep it in memory
and re-read it only after someone wrote it. docs/operations.md says why it is not the sensor cursor.

Mtimes are coarse (a file written twice within the clock's tick keeps its mtime), so, as git does,
an entry whose files were modified within :data:`RACY_NS` of the scan that recorded them is
re-hashed (not re-parsed) on the next scan.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from media_routes.spec import MAX_SPEC_BYTES, SPEC_FILENAME, Campaign, SpecError, load_campaign
from media_routes.spec_slices import stage_slice_hashes

INDEX_VERSION = 1
SHARDS = 64
RACY_NS = 2_000_000_000  # files modified within 2 s of the scan are re-hashed by the next scan
MAX_TRACKED_FILES = 2_000  # an invalid campaign's folder is watched file by file, up to this many


class KeyValueStore(Protocol):
    """The instance's key-value store (``DagsterInstance.daemon_cursor_storage``)."""

    def get_cursor_values(self, keys: set[str]) -> Mapping[str, str]: ...

    def set_cursor_values(self, pairs: Mapping[str, str]) -> None: ...


# --------------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------------

Stat = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass(frozen=True)
class Entry:
    """What the index knows about one campaign folder."""

    campaign: str
    files: dict[str, Stat]  # relative path ("campaign.yaml" first) -> stat when last read
    digest: str  # sha256 of those files' names and bytes
    code: str  # code_version() the validation ran with
    racy: bool = False  # a file was modified close to the scan that recorded it: re-hash next time
    error: str | None = None  # the validation problems, one per line; None when valid
    slices: dict[str, str] = field(default_factory=dict)  # stage -> slice hash (last valid spec)
    formats: list[str] = field(default_factory=list)
    approval: str = "auto"
    refresh: dict[str, Any] | None = None  # {"cron", "timezone", "new_seed"}
    synced: bool = False  # registered as a partition and its slices observed by the sensor
    deleted: bool = False  # the spec is gone; its partition and history are kept

    @property
    def valid(self) -> bool:
        return self.error is None and bool(self.slices)

    @property
    def active(self) -> bool:
        """Valid, synced and not deleted: what automation and the schedule act on."""
        return self.valid and self.synced and not self.deleted

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        data = dict(data)
        data["files"] = {k: tuple(v) for k, v in data["files"].items()}
        return cls(**data)


@cache
def code_version() -> str:
    """What a validation result depends on besides the files: this package's spec rules and routes.

    Changing the spec models, the slice definitions or a routing profile (a new release) re-validates
    every spec, paged like a new drop; unchanged slices are not re-observed."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256(f"index-v{INDEX_VERSION}".encode())
    for rel in ("spec.py", "spec_slices.py", "stages.py", "formats.py", "model_cards.py"):
        h.update((root / rel).read_bytes())
    for path in sorted((root / "routes").glob("*.yaml")) + sorted((root / "fonts").glob("*")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _stat(path: Path) -> Stat | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _digest(folder: Path, rels: Iterable[str], spec_bytes: bytes | None = None) -> str:
    h = hashlib.sha256()
    for rel in rels:
        h.update(rel.encode() + b"\0")
        try:
            h.update(spec_bytes if rel == SPEC_FILENAME and spec_bytes is not None else (folder / rel).read_bytes())
        except OSError as exc:
            h.update(f"<unreadable: {exc.errno}>".encode())
        h.update(b"\0")
    return h.hexdigest()


def _is_dir_key(rel: str) -> bool:
    return rel == "." or rel.endswith("/")


def _folder_files(folder: Path) -> list[str]:
    """Every file and folder under an invalid campaign's folder, so adding the missing cutout (which
    changes its folder's mtime) re-validates it. Folders are listed as "." and "sub/"."""
    out: list[str] = [SPEC_FILENAME]
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath).relative_to(folder)
        prefix = "" if str(base) == "." else f"{base}/"
        out.append(prefix or ".")
        out += [prefix + f for f in sorted(filenames) if not f.startswith(".") and prefix + f != SPEC_FILENAME]
        if len(out) >= MAX_TRACKED_FILES:
            break
    return out[:MAX_TRACKED_FILES]


def _stats(folder: Path, rels: Iterable[str]) -> dict[str, Stat]:
    out: dict[str, Stat] = {}
    for rel in rels:
        st = _stat(folder / rel)
        out[rel] = st if st is not None else (-1, -1, -1)
    return out


def _is_racy(stats: Mapping[str, Stat], scan_ns: int) -> bool:
    return any(st[1] >= scan_ns - RACY_NS for st in stats.values())


def parse_entry(folder: Path, *, synced: bool = False, previous: Entry | None = None) -> Entry:
    """Validate one campaign folder into an entry. Never raises: any failure is the entry's error.

    ``previous`` (the last entry of this campaign, if any) keeps the last good settings of a spec that
    became invalid, so a broken edit does not make the campaign forget its formats."""
    scan_ns = time.time_ns()
    spec_path = folder / SPEC_FILENAME
    # Stat first, then read, then validate: a write during validation leaves a stat that differs from the
    # file's next stat, so the next scan re-reads it (stats taken after reading could hide that write).
    folder_rels = _folder_files(folder)
    before = _stats(folder, folder_rels)
    campaign: Campaign | None = None
    raw: bytes | None = None
    try:
        raw = spec_path.read_bytes() if spec_path.stat().st_size <= MAX_SPEC_BYTES else None
        campaign = load_campaign(spec_path, raw=raw)
        error = None
    except SpecError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"{spec_path}: (file): cannot read: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - one broken spec must never stop the others
        error = f"{spec_path}: (file): could not be read: {type(exc).__name__}: {str(exc)[:300]}"
    if campaign is not None:
        try:
            slices = stage_slice_hashes(campaign)
        except Exception as exc:  # noqa: BLE001 - a file vanished between validation and hashing
            campaign, error = None, f"{spec_path}: (file): could not be hashed: {type(exc).__name__}: {exc}"
    if campaign is None:
        stats = before
        keep = previous if previous is not None and previous.slices else None
        return Entry(
            campaign=folder.name,
            files=stats,
            digest=_digest(folder, [r for r in folder_rels if not _is_dir_key(r)], raw),
            code=code_version(),
            racy=_is_racy(stats, scan_ns),
            error=error,
            slices=dict(keep.slices) if keep else {},
            formats=list(keep.formats) if keep else [],
            approval=keep.approval if keep else "auto",
            refresh=keep.refresh if keep else None,
            synced=synced,
        )
    spec = campaign.spec
    rels = [SPEC_FILENAME, *sorted(set(campaign.asset_files()))]
    stats = {rel: before.get(rel) or _stats(folder, [rel])[rel] for rel in rels}
    return Entry(
        campaign=folder.name,
        files=stats,
        digest=_digest(folder, rels, raw),
        code=code_version(),
        racy=_is_racy(stats, scan_ns),
        slices=slices,
        formats=list(spec.formats),
        approval=spec.approval,
        refresh=spec.refresh.model_dump() if spec.refresh is not None else None,
        synced=synced,
    )


def refresh_entry(folder: Path, previous: Entry | None) -> tuple[Entry, bool]:
    """The entry for a folder whose stat changed: (entry, parsed). If the bytes are the same as when
    ``previous`` was recorded (a touch, a copy with the same content, a racy mtime), only the
    fingerprint is renewed and nothing is parsed."""
    if previous is not None and previous.code == code_version():
        scan_ns = time.time_ns()
        stats = _stats(folder, previous.files)
        same_folders = all(stats[r] == st for r, st in previous.files.items() if _is_dir_key(r))
        if same_folders and _digest(folder, [r for r in previous.files if not _is_dir_key(r)]) == previous.digest:
            return replace(previous, files=stats, racy=_is_racy(stats, scan_ns), deleted=False), False
    return parse_entry(folder, synced=False, previous=previous), True


# --------------------------------------------------------------------------------------------------
# Scanning
# --------------------------------------------------------------------------------------------------


@dataclass
class Scan:
    """What changed in the folder since the index was written."""

    listed: int = 0  # campaign folders with a spec
    stat_calls: int = 0
    unchanged: int = 0
    changed: list[str] = field(default_factory=list)  # known campaigns whose files (or code) changed
    racy: list[str] = field(default_factory=list)  # same stats, but recorded too soon after a write: re-hash
    unsynced: list[str] = field(default_factory=list)  # known, unchanged, but not yet registered + observed
    new: list[str] = field(default_factory=list)  # folders the index has never seen
    gone: list[str] = field(default_factory=list)  # entries whose spec disappeared
    seconds: float = 0.0


def _same_files(folder: Path, entry: Entry, spec_stat: Stat | None, code: str) -> tuple[bool, int]:
    """Whether every file the entry recorded has the same stat (and the code the same version); stat calls made."""
    if entry.code != code or entry.deleted or entry.files.get(SPEC_FILENAME) != spec_stat:
        return False, 0
    calls = 0
    for rel, st in entry.files.items():
        if rel == SPEC_FILENAME:
            continue
        calls += 1
        if (_stat(folder / rel) or (-1, -1, -1)) != st:
            return False, calls
    return True, calls


def is_current(folder: Path, entry: Entry) -> bool:
    """The entry still describes the folder: same stats, same code, not racy (so its result can be reused)."""
    return not entry.racy and _same_files(folder, entry, _stat(folder / SPEC_FILENAME), code_version())[0]


def list_campaign_folders(campaigns_dir: Path) -> list[str]:
    """The ids of ``<dir>/<id>/campaign.yaml`` folders (as :func:`media_routes.spec.discover_spec_paths`)."""
    try:
        with os.scandir(campaigns_dir) as it:
            names = [e.name for e in it if not e.name.startswith(".") and e.is_dir()]
    except FileNotFoundError:
        return []
    return sorted(names)


def scan(campaigns_dir: Path, entries: Mapping[str, Entry]) -> Scan:
    """Stat the folder against the index: no file is read, nothing parsed."""
    started = time.perf_counter()
    out = Scan()
    code = code_version()
    seen: set[str] = set()
    for cid in list_campaign_folders(campaigns_dir):
        folder = campaigns_dir / cid
        entry = entries.get(cid)
        if entry is None:
            out.stat_calls += 1
            if (folder / SPEC_FILENAME).is_file():
                out.new.append(cid)
                seen.add(cid)
            continue
        spec_stat = _stat(folder / SPEC_FILENAME)
        out.stat_calls += 1
        if spec_stat is None:
            continue
        seen.add(cid)
        same, calls = _same_files(folder, entry, spec_stat, code)
        out.stat_calls += calls
        if not same:
            out.changed.append(cid)
        elif entry.racy:
            out.racy.append(cid)
        elif not entry.synced:
            out.unsynced.append(cid)
        else:
            out.unchanged += 1
    out.listed = len(seen)
    out.gone = sorted(cid for cid, e in entries.items() if cid not in seen and not e.deleted)
    out.seconds = time.perf_counter() - started
    return out


# --------------------------------------------------------------------------------------------------
# Storage in the instance's key-value store
# --------------------------------------------------------------------------------------------------


def _prefix(campaigns_dir: Path) -> str:
    where = hashlib.sha1(str(Path(campaigns_dir).resolve()).encode()).hexdigest()[:12]
    return f"media_routes/spec_index/v{INDEX_VERSION}/{where}"


def shard_of(campaign: str) -> int:
    return zlib.crc32(campaign.encode()) % SHARDS


_MEMORY: dict[str, tuple[str, dict[str, Entry]]] = {}  # prefix -> (generation, entries): one per process


@dataclass
class SpecIndex:
    """The index of one campaigns folder, as loaded from the instance."""

    campaigns_dir: Path
    entries: dict[str, Entry]
    generation: str | None = None  # None: never written
    reads: int = 0  # key-value queries made by load()

    @classmethod
    def load(cls, kv: KeyValueStore, campaigns_dir: Path) -> SpecIndex:
        """One small query when this process already holds the current generation; else two."""
        prefix = _prefix(campaigns_dir)
        meta = kv.get_cursor_values({f"{prefix}/meta"}).get(f"{prefix}/meta")
        if meta is None:
            return cls(Path(campaigns_dir), {}, None, reads=1)
        generation = json.loads(meta)["generation"]
        held = _MEMORY.get(prefix)
        if held is not None and held[0] == generation:
            return cls(Path(campaigns_dir), dict(held[1]), generation, reads=1)
        keys = {f"{prefix}/shard/{i}" for i in range(SHARDS)}
        entries: dict[str, Entry] = {}
        for value in kv.get_cursor_values(keys).values():
            for cid, data in json.loads(value).items():
                entries[cid] = Entry.from_json(data)
        _MEMORY[prefix] = (generation, entries)
        return cls(Path(campaigns_dir), dict(entries), generation, reads=2)

    def save(self, kv: KeyValueStore, changed: Iterable[str]) -> int:
        """Write the shards holding ``changed`` campaigns and a new generation; returns shards written."""
        shards = {shard_of(cid) for cid in changed}
        if not shards:
            return 0
        prefix = _prefix(self.campaigns_dir)
        by_shard: dict[int, dict[str, Any]] = {i: {} for i in shards}
        for cid, entry in self.entries.items():
            i = shard_of(cid)
            if i in by_shard:
                by_shard[i][cid] = entry.to_json()
        generation = os.urandom(8).hex()
        pairs = {f"{prefix}/shard/{i}": json.dumps(v, separators=(",", ":")) for i, v in by_shard.items()}
        if self.generation is None:  # first write: every shard exists from now on
            pairs |= {f"{prefix}/shard/{i}": "{}" for i in range(SHARDS) if i not in by_shard}
        pairs[f"{prefix}/meta"] = json.dumps(
            {"generation": generation, "campaigns_dir": str(self.campaigns_dir), "written_at": time.time()}
        )
        kv.set_cursor_values(pairs)
        self.generation = generation
        _MEMORY[prefix] = (generation, dict(self.entries))
        return len(shards)


def forget_process_memory() -> None:
    """Drop the in-process copies (tests that simulate a new process)."""
    _MEMORY.clear()
