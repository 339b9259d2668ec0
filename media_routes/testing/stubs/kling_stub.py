"""A stub of the Kling AI official API (image-to-video v1 task API) on 127.0.0.1.

Standard library only for the server (two ``ThreadingHTTPServer`` s in background threads, port 0):
an API server and a separate "CDN" server for the result videos, so downloads go to a foreign origin.
It reproduces shared/reference/provider-contracts.md sections 3 and 6:

- ``POST /v1/videos/image2video``, ``GET /v1/videos/image2video/{task_id | external_task_id}``,
  ``GET /v1/videos/image2video?pageNum=&pageSize=``; every answer is ``{"code", "message", "request_id"[, "data"]}``.
- Auth: ``Authorization: Bearer <jwt>`` verified here with the standard library (HMAC-SHA256, independent of
  the PyJWT the client uses): header ``alg`` HS256, signature with the known secret, ``iss`` = the access key,
  ``exp`` and ``nbf`` against the stub clock (injectable). Failures answer 401 with code 1001 (no header),
  1002 (malformed / bad signature / wrong alg / missing claims), 1000 (unknown ``iss``), 1003 (``nbf`` in
  the future) or 1004 (expired).
- Validation of create (400 code 1201): missing image, ``data:`` prefix, undecodable or too small image,
  duration not the string "5"/"10", bad mode, over-long prompts, cfg_scale outside 0..1, unknown fields
  (this stub is stricter than the service, so a client sending an undocumented field is caught).
  An unknown model answers 404 code 1203.
- Task status goes ``submitted`` (first poll) -> ``processing`` -> ``succeed``/``failed`` after
  ``polls_before_done`` polls; a succeeded task has ``task_result.videos[{id, url, duration}]`` (the URL is on
  the CDN server, needs no auth) and ``final_unit_deduction``: the units the contract's price table gives for
  the model, mode and duration at $0.14 a unit (:data:`UNITS_DEDUCTED`, e.g. kling-v2-5-turbo std 5 s: $0.21 =
  1.5 units), sent as a string as the service does.
- The result is a small valid H.264 MP4 made with PyAV: 24 fps, the requested 5 or 10 s, the image's aspect
  ratio at a long side of 64 px (``video_long_side``), a camera move over the image (``video_motion``: a push-in,
  or a cut, a whip pan or a wrap-around scroll); cached per size, duration, image and move (encoded once).
- Faults, per test, with :meth:`KlingStub.fail_next`: ``"error"`` with any documented ``code`` (the HTTP
  status comes from :data:`ERROR_CODES`), ``"slow"`` (sleeps ``delay_s``), ``"not_json"``, ``"echo_auth"``
  (an error message that echoes the Authorization header, to test redaction) and ``"task_failed"`` (the next
  created task ends ``failed`` with ``task_status_msg``).

Every request is recorded (server, method, path, headers with the bearer token replaced by ``<redacted>``,
parsed JSON body, the verified JWT header/claims, a short token fingerprint, the auth code) with counters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from media_routes.testing.stubs.base import StubHandler, StubServer, image_video_frames

log = logging.getLogger(__name__)

DEFAULT_ACCESS_KEY = "ak-test-0000"
DEFAULT_SECRET_KEY = "sk-test-fake-secret-0123456789abcdef"
REDACTED = "<redacted>"
VIDEO_FPS = 24
VIDEO_LONG_SIDE = 64

MODEL_NAMES = frozenset(
    {
        "kling-v1",
        "kling-v1-5",
        "kling-v1-6",
        "kling-v2-master",
        "kling-v2-1",
        "kling-v2-1-master",
        "kling-v2-5-turbo",
        "kling-v2-6",
        "kling-v3",
        "kling-v3-omni",
        "kling-video-o1",
    }
)
CREATE_FIELDS = frozenset(
    {
        "model_name",
        "model",
        "image",
        "image_tail",
        "prompt",
        "negative_prompt",
        "cfg_scale",
        "mode",
        "duration",
        "camera_control",
        "static_mask",
        "dynamic_masks",
        "sound",
        "voice_list",
        "callback_url",
        "external_task_id",
    }
)

# code -> (HTTP status, message): the contract's error table.
ERROR_CODES: dict[int, tuple[int, str]] = {
    1000: (401, "Authentication failed"),
    1001: (401, "Authorization is empty"),
    1002: (401, "Authorization is invalid"),
    1003: (401, "Authorization is not yet valid"),
    1004: (401, "Authorization has expired"),
    1100: (429, "Account exception"),
    1101: (429, "Account in arrears"),
    1102: (429, "Resource pack depleted or expired"),
    1103: (403, "Unauthorized access to the requested resource"),
    1200: (400, "Invalid request parameters"),
    1201: (400, "Invalid request parameters"),
    1202: (404, "Invalid request method"),
    1203: (404, "Requested resource does not exist (model)"),
    1300: (400, "Trigger strategy of the platform"),
    1301: (400, "Trigger the content security policy of the platform"),
    1302: (429, "API request too fast, exceeding the platform's rate limit"),
    1303: (429, "Concurrency or QPS exceeds the prepaid resource package limit"),
    1304: (429, "Trigger the IP whitelist policy of the platform"),
    5000: (500, "Server internal error"),
    5001: (503, "Server temporarily unavailable, usually due to maintenance"),
    5002: (504, "Server internal timeout, usually due to a backlog"),
}
FAULT_KINDS = frozenset({"error", "slow", "not_json", "echo_auth", "task_failed"})
ROUTES = frozenset({"create", "query", "list", "download"})
CONTENT_FAILURE_MSG = "Failure to pass the risk control system: the content may be sensitive"

_QUERY_RE = re.compile(r"^/v1/videos/image2video/(?P<id>[A-Za-z0-9_\-]+)$")
_VIDEO_RE = re.compile(r"^/cdn/videos/(?P<id>[A-Za-z0-9]+)\.mp4$")


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_hs256(payload: dict[str, Any], secret: str, header: dict[str, Any] | None = None) -> str:
    """An HS256 JWT built with the standard library (for tests that need a hand-made token)."""
    head = _b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(signature)}"


def fingerprint(token: str) -> str:
    """A short, non-reversible id for a token, so tests can tell tokens apart without recording them."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


_VIDEO_CACHE: dict[tuple[int, int, int, str, str], bytes] = {}
_VIDEO_LOCK = threading.Lock()


def video_size_for(image_size: tuple[int, int], long_side: int = VIDEO_LONG_SIDE) -> tuple[int, int]:
    """The stub's output size: the image's aspect ratio with a 64 px (``long_side``) long side, even dimensions."""
    width, height = image_size
    scale = long_side / max(width, height)
    return (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))


def render_mp4(
    size: tuple[int, int], duration_s: int, image_png: bytes | None = None, motion: str = "push_in"
) -> bytes:
    """A small H.264 MP4 (yuv420p, 24 fps, no audio) of ``duration_s`` seconds; cached.

    With ``image_png`` the frames are a camera move over that image (``motion``, ``base.image_video_frames``;
    default a slow push-in), else flat grey levels."""
    key = (size[0], size[1], duration_s, hashlib.sha256(image_png or b"").hexdigest(), motion)
    with _VIDEO_LOCK:
        cached = _VIDEO_CACHE.get(key)
        if cached is not None:
            return cached
        width, height = size
        out = io.BytesIO()
        with av.open(out, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=VIDEO_FPS)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "ultrafast"}
            stream.codec_context.thread_count = 1
            n = duration_s * VIDEO_FPS
            pictures = image_video_frames(image_png, size, n, motion) if image_png else None
            for index in range(n):
                level = np.uint8(40 + (index * 3) % 180)
                picture = pictures[index] if pictures else np.full((height, width, 3), level, np.uint8)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, VIDEO_FPS)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        _VIDEO_CACHE[key] = out.getvalue()
        return _VIDEO_CACHE[key]


class KlingApiError(Exception):
    """Raised inside a handler to answer with a Kling error body."""

    def __init__(self, code: int, message: str | None = None) -> None:
        status, default = ERROR_CODES[code]
        super().__init__(message or default)
        self.code = code
        self.status = status
        self.message = message or default


@dataclass(frozen=True)
class RecordedRequest:
    server: str  # "api" or "cdn"
    method: str
    path: str  # raw, including the query string
    route: str  # create | query | list | download | unknown
    headers: dict[str, str]  # lower-cased names; the bearer token replaced by <redacted>
    body: Any  # parsed JSON, None when empty, or the raw text when it was not JSON
    jwt_header: dict[str, Any] | None  # decoded JWT header, when the token could be decoded
    jwt_claims: dict[str, Any] | None  # decoded JWT claims, when the token could be decoded
    token_fingerprint: str | None
    auth_code: int | None  # None: token accepted (or no auth needed); else the Kling code of the refusal


# (model, mode, duration) -> units deducted, from the contract's price table ($0.14 a unit; section 3, "Pricing").
# 10 s prices the table leaves out are twice the 5 s price; models it does not price deduct 1 unit per 5 s.
UNITS_DEDUCTED: dict[tuple[str, str, str], str] = {
    ("kling-v2-5-turbo", "std", "5"): "1.5",
    ("kling-v2-5-turbo", "std", "10"): "3",
    ("kling-v2-5-turbo", "pro", "5"): "2.5",
    ("kling-v2-5-turbo", "pro", "10"): "5",
    ("kling-v2-1", "std", "5"): "2",
    ("kling-v2-1", "std", "10"): "4",
    ("kling-v2-1", "pro", "5"): "3.5",
    ("kling-v2-1", "pro", "10"): "7",
    ("kling-v2-1-master", "std", "5"): "10",
    ("kling-v2-1-master", "std", "10"): "20",
    ("kling-v2-master", "std", "5"): "10",
    ("kling-v2-master", "std", "10"): "20",
    ("kling-v2-6", "pro", "5"): "2.5",
}


def units_deducted(model_name: str, mode: str, duration: str) -> str:
    return UNITS_DEDUCTED.get((model_name, mode, duration), "1" if duration == "5" else "2")


@dataclass
class _Task:
    task_id: str
    model_name: str
    duration: str
    image_size: tuple[int, int]
    external_task_id: str | None
    created_at: int
    polls: int = 0
    outcome: str = "succeed"  # succeed | failed
    failure_msg: str = ""
    video_id: str | None = None
    image_png: bytes | None = None
    mode: str = "std"


@dataclass
class _State:
    tasks: dict[str, _Task] = field(default_factory=dict)
    videos: dict[str, bytes] = field(default_factory=dict)
    counter: int = 0


# ---------------------------------------------------------------------------------------------------------
# the stub
# ---------------------------------------------------------------------------------------------------------


class KlingStub(StubServer[RecordedRequest]):
    """The stub server pair. Use as a context manager, or ``start()`` / ``stop()``."""

    name = "kling-stub"
    listeners = ("api", "cdn")
    poll_interval_s = 0.01

    def __init__(
        self,
        *,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        polls_before_done: int = 2,
        clock: Callable[[], float] = time.time,
        video_long_side: int = VIDEO_LONG_SIDE,
        video_motion: str = "push_in",
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.polls_before_done = polls_before_done
        self.video_long_side = video_long_side  # 64 px by default; e.g. 640 for a video a brand can be seen in
        self.video_motion = video_motion  # base.VIDEO_MOTIONS: push_in, or a move an alignment cannot follow
        self.clock = clock
        self._state = _State()
        super().__init__()

    @property
    def url(self) -> str:
        """Base URL of the API server."""
        return self._base_url("api")

    @property
    def cdn_url(self) -> str:
        """Base URL of the CDN server that serves result videos (another origin)."""
        return self._base_url("cdn")

    # -- test controls ---------------------------------------------------------------------------------------

    def fail_next(self, kind: str, count: int = 1, *, route: str | Iterable[str] | None = None, **options: Any) -> None:
        """Make the next ``count`` matching requests fail.

        ``error`` needs ``code=`` (a key of :data:`ERROR_CODES`; ``message=`` optional). ``slow`` takes
        ``delay_s`` (default 1.0) and then answers normally. ``task_failed`` applies to ``create`` and makes the
        created task end ``failed`` with ``message=`` (default: a risk-control message). Faults other than
        ``task_failed`` apply to the API routes (create, query, list) unless ``route`` says otherwise.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; choose from {sorted(FAULT_KINDS)}")
        if kind == "error" and options.get("code") not in ERROR_CODES:
            raise ValueError("fail_next('error') needs code= one of ERROR_CODES")
        if route is None:
            routes = frozenset({"create"}) if kind == "task_failed" else frozenset({"create", "query", "list"})
        else:
            routes = frozenset({route} if isinstance(route, str) else route)
        if not routes <= ROUTES:
            raise ValueError(f"unknown route in {sorted(routes)}")
        self._add_fault(kind, count, routes, options)

    def task_polls(self, task_id: str) -> int:
        with self._lock:
            return self._state.tasks[task_id].polls

    @property
    def last_request_id(self) -> str:
        with self._lock:
            return f"req-{self._state.counter:06d}"

    # -- internals -------------------------------------------------------------------------------------------

    def _next_request_id(self) -> str:
        with self._lock:
            self._state.counter += 1
            return f"req-{self._state.counter:06d}"

    def _verify(self, authorization: str | None) -> tuple[int | None, dict[str, Any] | None, dict[str, Any] | None]:
        """(refusal code or None, JWT header, JWT claims)."""
        if not authorization:
            return 1001, None, None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return 1002, None, None
        parts = token.strip().split(".")
        if len(parts) != 3:
            return 1002, None, None
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (binascii.Error, ValueError):
            return 1002, None, None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return 1002, None, None
        if header.get("alg") != "HS256":
            return 1002, header, claims
        expected = hmac.new(self.secret_key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            return 1002, header, claims
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
            return 1002, header, claims
        if claims.get("iss") != self.access_key:
            return 1000, header, claims
        now = self.clock()
        if now < nbf:
            return 1003, header, claims
        if now >= exp:
            return 1004, header, claims
        return None, header, claims

    def _handle(self, handler: StubHandler, method: str) -> None:
        role = handler.server.listener
        split = urlsplit(handler.path)
        body, _ = self._read_body(handler)
        if role == "cdn":
            route = "download" if method == "GET" and _VIDEO_RE.match(split.path) else "unknown"
        elif split.path == "/v1/videos/image2video":
            route = {"POST": "create", "GET": "list"}.get(method, "unknown")
        elif _QUERY_RE.match(split.path):
            route = "query" if method == "GET" else "unknown"
        else:
            route = "unknown"

        authorization = handler.headers.get("authorization")
        auth_code, jwt_header, claims = self._verify(authorization) if role == "api" else (None, None, None)
        token = authorization.partition(" ")[2].strip() if authorization else ""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = f"{authorization.partition(' ')[0]} {REDACTED}" if authorization else REDACTED
        self._record(
            RecordedRequest(
                server=role,
                method=method,
                path=handler.path,
                route=route,
                headers=headers,
                body=body,
                jwt_header=jwt_header,
                jwt_claims=claims,
                token_fingerprint=fingerprint(token) if token else None,
                auth_code=auth_code,
            )
        )

        request_id = self._next_request_id()
        try:
            if role == "cdn":
                self._download(handler, route, split.path)
                return
            if auth_code is not None:
                raise KlingApiError(auth_code)
            fault = self._take_fault(route, frozenset({"error", "slow", "not_json", "echo_auth"}))
            if fault is not None:
                if fault.kind == "slow":
                    time.sleep(float(fault.options.get("delay_s", 1.0)))
                elif fault.kind == "not_json":
                    self._send_bytes(handler, 200, b'{"code": 0, "message": "SUCC', "application/json")
                    return
                elif fault.kind == "echo_auth":
                    raise KlingApiError(1002, f"bad header {authorization}")
                else:
                    raise KlingApiError(int(fault.options["code"]), fault.options.get("message"))
            data: dict[str, Any] | list[dict[str, Any]]
            if route == "create":
                data = self._create(body)
            elif route == "query":
                match = _QUERY_RE.match(split.path)
                assert match is not None
                data = self._query(match.group("id"))
            elif route == "list":
                data = self._list(parse_qs(split.query))
            else:
                raise KlingApiError(1202)
            self._json(handler, 200, {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data})
        except KlingApiError as err:
            self._json(handler, err.status, {"code": err.code, "message": err.message, "request_id": request_id})
        except BrokenPipeError:  # the client gave up (timeout tests)
            pass

    def _json(self, handler: StubHandler, status: int, body: dict[str, Any]) -> None:
        try:
            self._send_json(handler, status, body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _download(self, handler: StubHandler, route: str, path: str) -> None:
        match = _VIDEO_RE.match(path)
        with self._lock:
            data = self._state.videos.get(match.group("id")) if route == "download" and match else None
        if data is None:
            self._send_bytes(handler, 404, b"not found", "text/plain")
            return
        self._send_bytes(handler, 200, data, "video/mp4")

    def _create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise KlingApiError(1200, "request body must be a JSON object")
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise KlingApiError(1201, f"unknown field(s): {', '.join(unknown)}")
        model_name = body.get("model_name") or body.get("model") or "kling-v1"
        if model_name not in MODEL_NAMES:
            raise KlingApiError(1203, f"model_name {model_name} does not exist")
        image, image_tail = body.get("image"), body.get("image_tail")
        if not image and not image_tail:
            raise KlingApiError(1201, "image or image_tail is required")
        size = self._image_size(image or image_tail)
        duration = body.get("duration", "5")
        if duration not in ("5", "10") or not isinstance(duration, str):
            raise KlingApiError(1201, f"duration must be '5' or '10', got {duration!r}")
        if body.get("mode", "std") not in ("std", "pro"):
            raise KlingApiError(1201, "mode must be std or pro")
        for name in ("prompt", "negative_prompt"):
            value = body.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > 2500):
                raise KlingApiError(1201, f"{name} must be a string of at most 2500 characters")
        cfg = body.get("cfg_scale")
        if cfg is not None and (not isinstance(cfg, int | float) or not 0 <= cfg <= 1):
            raise KlingApiError(1201, "cfg_scale must be between 0 and 1")
        fault = self._take_fault("create", frozenset({"task_failed"}))
        now_ms = int(self.clock() * 1000)
        with self._lock:
            task_id = f"86{self._state.counter:010d}{len(self._state.tasks):04d}"
            task = _Task(
                task_id=task_id,
                model_name=str(model_name),
                duration=duration,
                image_size=size,
                image_png=base64.b64decode(image) if isinstance(image, str) and not image.startswith("http") else None,
                external_task_id=body.get("external_task_id"),
                created_at=now_ms,
                mode=str(body.get("mode", "std")),
            )
            if fault is not None:
                task.outcome = "failed"
                task.failure_msg = str(fault.options.get("message", CONTENT_FAILURE_MSG))
            self._state.tasks[task_id] = task
        return self._task_data(task)

    @staticmethod
    def _image_size(image: Any) -> tuple[int, int]:
        if not isinstance(image, str):
            raise KlingApiError(1201, "image must be a URL or base64 string")
        if image.startswith(("http://", "https://")):
            return (1280, 720)  # the stub does not fetch URLs
        if image.startswith("data:"):
            raise KlingApiError(1201, "image must be raw base64 without a data: prefix")
        try:
            data = base64.b64decode(image, validate=True)
            with Image.open(io.BytesIO(data)) as img:
                fmt, size = img.format, img.size
        except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
            raise KlingApiError(1201, "image is not valid base64 of a jpg/png image") from exc
        if fmt not in ("PNG", "JPEG"):
            raise KlingApiError(1201, "image format must be jpg, jpeg or png")
        if len(data) > 10 * 1024 * 1024:
            raise KlingApiError(1201, "image must be at most 10MB")
        if min(size) < 300:
            raise KlingApiError(1201, "image width and height must be at least 300px")
        if not 1 / 2.5 <= size[0] / size[1] <= 2.5:
            raise KlingApiError(1201, "image aspect ratio must be between 1:2.5 and 2.5:1")
        return size

    def _find_task(self, task_or_external_id: str) -> _Task:
        tasks = self._state.tasks
        if task_or_external_id in tasks:
            return tasks[task_or_external_id]
        for task in tasks.values():
            if task.external_task_id == task_or_external_id:
                return task
        raise KlingApiError(1201, f"task {task_or_external_id} not found")

    def _query(self, task_or_external_id: str) -> dict[str, Any]:
        with self._lock:
            task = self._find_task(task_or_external_id)
            task.polls += 1
            final = task.polls > self.polls_before_done
        if final and task.outcome == "succeed" and task.video_id is None:
            video = render_mp4(
                video_size_for(task.image_size, self.video_long_side), int(task.duration), task.image_png,
                self.video_motion,
            )  # fmt: skip
            with self._lock:
                task.video_id = hashlib.sha256(task.task_id.encode()).hexdigest()[:16]
                self._state.videos[task.video_id] = video
        return self._task_data(task)

    def _list(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        page = int(query.get("pageNum", ["1"])[0])
        size = int(query.get("pageSize", ["30"])[0])
        with self._lock:
            tasks = list(self._state.tasks.values())[(page - 1) * size : page * size]
        return [self._task_data(task) for task in tasks]

    def _task_data(self, task: _Task) -> dict[str, Any]:
        if task.polls == 0 or task.polls == 1 and self.polls_before_done > 0:
            status = "submitted"
        elif task.polls <= self.polls_before_done:
            status = "processing"
        else:
            status = task.outcome
        data: dict[str, Any] = {
            "task_id": task.task_id,
            "task_status": status,
            "task_info": {"external_task_id": task.external_task_id} if task.external_task_id else {},
            "created_at": task.created_at,
            "updated_at": int(self.clock() * 1000),
        }
        if status == "failed":
            data["task_status_msg"] = task.failure_msg
        if status == "succeed":
            data["task_status_msg"] = ""
            data["final_unit_deduction"] = units_deducted(task.model_name, task.mode, task.duration)
            data["task_result"] = {
                "videos": [
                    {
                        "id": task.video_id,
                        "url": f"{self.cdn_url}/cdn/videos/{task.video_id}.mp4",
                        "duration": task.duration,
                    }
                ]
            }
        return data
