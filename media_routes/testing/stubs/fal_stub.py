"""A stub of the fal.ai queue API on 127.0.0.1, plus a second listener standing in for the ``fal.media`` CDN.

Standard library only (``ThreadingHTTPServer`` in background threads, port 0), images with Pillow. Shapes
follow shared/reference/provider-contracts.md sections 4 and 6:

- ``POST /{endpoint_id}`` (the raw model input as body) answers ``{request_id, response_url, status_url,
  cancel_url, queue_position}``. The returned URLs drop the endpoint subpath (``owner/alias/requests/{id}``)
  and, with ``url_prefix``, sit under an extra path prefix: only the URLs handed out are served, a rebuilt
  ``.../requests/{id}`` path gets 405 (the contract's gotcha), anything else 404.
- ``GET status_url`` goes ``IN_QUEUE`` (``queue_polls`` times) -> ``IN_PROGRESS`` (``progress_polls``) ->
  ``COMPLETED``; ``logs`` is always present (the official client indexes it), filled when ``?logs=1``.
- ``GET response_url``: the output JSON, or the failed request's error status and body.
- ``PUT cancel_url``: 202 ``{"status": "CANCELLATION_REQUESTED"}`` or 400 ``{"status": "ALREADY_COMPLETED"}``
  (these bodies are from fal's docs, not the contract).
- Auth: ``Authorization: Key <key>``; missing or wrong -> 401 ``{"detail": ...}``. Unknown endpoint -> 404.
  Bad input -> 422 ``{"detail": [{loc, msg, type}]}``: missing/unknown fields, wrong types, enums, undecodable
  data URIs (the stub accepts only ``data:`` URIs for ``*_url`` inputs; it cannot fetch URLs).
- Outputs are deterministic PNGs served by the CDN listener (another port, so another origin: the key must
  not go there), or ``data:`` URIs with ``sync_mode``. Every answer with a request id has ``X-Fal-Request-Id``.
- Failures switchable per test with :meth:`FalStub.fail_next` (see ``FAULTS``).

Every request is recorded (listener, method, raw path, route, headers with the key value replaced, JSON body).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import re
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from media_routes.testing.stubs.base import StubHandler, StubHTTPServer, StubServer

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "fake-key-id:fake-key-secret-0123456789"
REDACTED = "<redacted>"

# endpoint id -> (required fields, optional fields with a type/enum check)
_NUM = (int, float)
MODELS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "fal-ai/clarity-upscaler": (
        {"image_url": str},
        {
            "prompt": str,
            "negative_prompt": str,
            "upscale_factor": _NUM,
            "creativity": _NUM,
            "resemblance": _NUM,
            "guidance_scale": _NUM,
            "num_inference_steps": int,
            "seed": int,
            "enable_safety_checker": bool,
        },
    ),
    "fal-ai/esrgan": (
        {"image_url": str},
        {
            "scale": _NUM,
            "model": ("RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "RealESRGAN_x4_v3"),
            "face": bool,
            "tile": int,
            "output_format": ("png", "jpeg"),
        },
    ),
    "fal-ai/seedvr/upscale/image": (
        {"image_url": str},
        {
            "upscale_mode": ("factor", "target"),
            "upscale_factor": _NUM,
            "target_resolution": ("720p", "1080p", "1440p", "2160p"),
            "noise_scale": _NUM,
            "seed": int,
        },
    ),
    "fal-ai/bria/expand": (
        {"image_url": str, "canvas_size": list},
        {
            "original_image_size": list,
            "original_image_location": list,
            "aspect_ratio": str,
            "prompt": str,
            "negative_prompt": str,
            "seed": int,
        },
    ),
    "fal-ai/flux-pro/v1/fill": (
        {"image_url": str, "mask_url": str, "prompt": str},
        {
            "num_images": int,
            "seed": int,
            "safety_tolerance": tuple(str(n) for n in range(1, 7)),
            "output_format": ("jpeg", "png"),
            "enhance_prompt": bool,
            "sync_mode": bool,
        },
    ),
}
for _required, _optional in MODELS.values():
    _optional.setdefault("sync_mode", bool)

CONTENT_POLICY_DETAIL: list[dict[str, Any]] = [
    {
        "loc": ["body", "prompt"],
        "msg": "The content could not be processed because it contained material flagged by a content checker.",
        "type": "content_policy_violation",
        "url": "https://docs.fal.ai/errors#content_policy_violation",
        "input": "",
        "ctx": {},
        "categories": ["sexual"],
    }
]

# fault kind -> routes it applies to by default. HTTP faults answer instead of the route; job faults shape
# the outcome of the next submitted request.
_QUEUE_ROUTES = frozenset({"submit", "status", "result", "cancel"})
FAULTS: dict[str, frozenset[str]] = {
    "content_policy": frozenset({"submit", "result"}),  # 422 detail[type=content_policy_violation]
    "rate_limit": _QUEUE_ROUTES,  # 429, Retry-After header (retry_after="3"; None for none)
    "server_error": _QUEUE_ROUTES | {"cdn"},  # 500 {"detail": "Internal Server Error"}
    "unavailable": _QUEUE_ROUTES,  # 503 runner_scheduling_failure (+ X-Fal-Error-Type, X-Fal-Retryable)
    "gateway_timeout": _QUEUE_ROUTES,  # 504 {"detail": "Request timed out", "error_type": "request_timeout"}
    "locked": _QUEUE_ROUTES,  # 403 "User is locked. Reason: Exhausted balance."
    "forbidden": _QUEUE_ROUTES,  # 403 another reason
    "slow": _QUEUE_ROUTES | {"cdn"},  # sleeps delay_s (default 1.0), then answers normally
    "truncated": _QUEUE_ROUTES,  # 200 with a cut-off JSON body
    # next job: status COMPLETED with error/error_type, result answers code (500) with {"detail", "error_type"}
    "job_error": frozenset({"submit"}),
    # next job: status COMPLETED (no error field), result answers 422 content_policy_violation
    "job_content_policy": frozenset({"submit"}),
    "nsfw_output": frozenset({"submit"}),  # next job's output has has_nsfw_concepts [true]
}
_JOB_FAULTS = frozenset({"job_error", "job_content_policy", "nsfw_output"})

_REQUESTS_RE = re.compile(r"^(?P<base>.*)/requests/(?P<id>[0-9a-f\-]+)(?P<tail>/status|/cancel)?$")


def _seed(*parts: bytes | str) -> int:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return int.from_bytes(digest.digest()[:8], "big")


def render_png(size: tuple[int, int], *key: bytes | str, base: Image.Image | None = None) -> bytes:
    """A deterministic PNG: a colour and a stripe picked from a hash of ``key``, blended at 10 % over ``base``
    (the input image, as an upscaler, fill or expand model returns something derived from it) when given: its
    colours stay within about 15 CIEDE2000, as from a model that keeps the brand colours."""
    seed = _seed(*key)
    colour = (seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF)
    img = Image.new("RGB", size, colour)
    stripe = (255 - colour[0], 255 - colour[1], 255 - colour[2])
    x = (seed >> 24) % max(1, size[0])
    for y in range(size[1]):
        img.putpixel((x, y), stripe)
    if base is not None:
        img = Image.blend(base.convert("RGB").resize(size, Image.Resampling.BILINEAR), img, 0.10)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


class ApiError(Exception):
    """Raised inside a handler to answer with a fal error body."""

    def __init__(self, code: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.code = code
        self.body = body
        self.headers = dict(headers or {})


def _unprocessable(loc: str, msg: str, kind: str = "value_error") -> ApiError:
    return ApiError(422, {"detail": [{"loc": ["body", loc], "msg": msg, "type": kind}]})


@dataclass(frozen=True)
class RecordedRequest:
    listener: str  # "api" or "cdn"
    method: str
    path: str  # raw, including the query string
    route: str  # submit | status | result | cancel | cdn | unknown
    headers: dict[str, str]  # lower-cased names; the authorization value replaced by <redacted>
    body: Any  # parsed JSON, None when empty, or the raw text when it was not JSON
    auth: str  # "missing", "valid" or "invalid"


@dataclass
class _Job:
    request_id: str
    model: str
    payload: dict[str, Any]
    outcome: str  # ok | job_error | job_content_policy | nsfw_output
    options: dict[str, Any]
    queue_polls: int
    progress_polls: int
    cancelled: bool = False
    output: dict[str, Any] | None = None
    submitted_at: float = 0.0
    finished_at: float | None = None  # when the result was first fetched


@dataclass
class _State:
    jobs: dict[str, _Job] = field(default_factory=dict)
    urls: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (route, request id)
    files: dict[str, bytes] = field(default_factory=dict)
    counter: int = 0


class _Handler(StubHandler):
    def do_PUT(self) -> None:
        self.server.stub._handle(self, "PUT")


class FalStub(StubServer[RecordedRequest]):
    """The stub. Use as a context manager, or ``start()`` / ``stop()``.

    ``url_prefix`` (e.g. ``"/elsewhere"``) puts the status/response/cancel URLs it hands out under another
    path prefix than the submit URL, so a client that rebuilds them instead of using them gets 404/405.
    """

    name = "fal-stub"
    listeners = ("api", "cdn")
    handler_class = _Handler
    faults = FAULTS

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        queue_polls: int = 1,
        progress_polls: int = 1,
        url_prefix: str = "",
        tls: tuple[Path, Path] | None = None,
        job_seconds: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.job_seconds = job_seconds  # a job stays IN_PROGRESS at least this long (fixed provider latency)
        self.queue_polls = queue_polls
        self.progress_polls = progress_polls
        self.url_prefix = url_prefix.rstrip("/")
        self.tls = tls  # (cert, key) PEM files: the queue listener speaks https (for the official client)
        self._state = _State()
        super().__init__()

    # -- lifecycle -------------------------------------------------------------------------------------

    def _configure(self, server: StubHTTPServer) -> None:
        if server.listener == "api" and self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)

    @property
    def url(self) -> str:
        """Queue base URL (``FAL_QUEUE_URL``), e.g. ``http://127.0.0.1:PORT`` (https with ``tls``)."""
        return self._base_url("api", "https" if self.tls else "http")

    @property
    def cdn_url(self) -> str:
        """Base URL of the CDN listener (another port: another origin)."""
        return self._base_url("cdn")

    # -- test API --------------------------------------------------------------------------------------

    def fail_next(self, kind: str, count: int = 1, *, route: str | Iterable[str] | None = None, **options: Any) -> None:
        """Make the next ``count`` matching requests fail (or vary) as ``kind`` (one of ``FAULTS``).

        Options: ``retry_after`` (str or None) for rate_limit; ``delay_s`` for slow; ``code``, ``error_type``,
        ``message`` for job_error; ``message`` for forbidden/server_error.
        """
        super().fail_next(kind, count, route=route, **options)

    def job(self, request_id: str) -> _Job:
        with self._lock:
            return self._state.jobs[request_id]

    # -- request handling --------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self.api_key, REDACTED)

    def _handle(self, handler: StubHandler, method: str) -> None:
        try:
            self._dispatch(handler, method)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _route_of(self, listener: str, method: str, path: str) -> tuple[str, str | None]:
        if listener == "cdn":
            return "cdn", None
        with self._lock:
            known = self._state.urls.get(path)
        if known is not None:
            return known
        if method == "POST":
            return "submit", None
        return "unknown", None

    def _dispatch(self, handler: StubHandler, method: str) -> None:
        listener = handler.server.listener
        split = urlsplit(handler.path)
        body, json_error = self._read_body(handler)
        bad_json = json_error is not None
        authorization = handler.headers.get("authorization")
        auth = (
            "missing" if authorization is None else ("valid" if authorization == f"Key {self.api_key}" else "invalid")
        )
        headers = {k.lower(): (REDACTED if k.lower() == "authorization" else v) for k, v in handler.headers.items()}
        route, request_id = self._route_of(listener, method, split.path)
        recorded_body = body.replace(self.api_key, REDACTED) if isinstance(body, str) else body
        self._record(RecordedRequest(listener, method, handler.path, route, headers, recorded_body, auth))
        extra: dict[str, str] = {}
        try:
            if listener == "cdn":
                self._apply_fault(handler, "cdn")
                self._send_cdn(handler, split.path)
                return
            if route == "unknown":
                if _REQUESTS_RE.match(split.path):
                    raise ApiError(405, {"detail": "Method Not Allowed"})
                raise ApiError(404, {"detail": "Not Found"})
            if auth != "valid":
                message = "Missing authorization header" if auth == "missing" else "Invalid key"
                raise ApiError(401, {"detail": message})
            if request_id is None:
                request_id = str(uuid.UUID(bytes=hashlib.sha256(f"req{self._next_counter()}".encode()).digest()[:16]))
            extra = {"X-Fal-Request-Id": request_id}
            if self._apply_fault(handler, route, request_id):
                return
            if route == "submit":
                if bad_json or not isinstance(body, dict):
                    raise ApiError(422, {"detail": [{"loc": ["body"], "msg": "Invalid JSON", "type": "json_invalid"}]})
                self._send_json(handler, 200, self._submit(split.path.strip("/"), body, request_id), extra)
            elif route == "status":
                self._send_json(handler, 200, self._status(request_id, parse_qs(split.query)), extra)
            elif route == "result":
                code, payload = self._result(request_id)
                self._send_json(handler, code, payload, extra)
            elif route == "cancel":
                if method != "PUT":
                    raise ApiError(405, {"detail": "Method Not Allowed"})
                code, payload = self._cancel(request_id)
                self._send_json(handler, code, payload, extra)
        except ApiError as err:
            self._send_json(handler, err.code, err.body, {**extra, **err.headers})

    def _next_counter(self) -> int:
        with self._lock:
            self._state.counter += 1
            return self._state.counter

    def _apply_fault(self, handler: StubHandler, route: str, request_id: str | None = None) -> bool:
        fault = self._take_fault(route, frozenset(FAULTS) - _JOB_FAULTS)
        if fault is None:
            return False
        opts = fault.options
        rid = {"X-Fal-Request-Id": request_id} if request_id else {}
        if fault.kind == "slow":
            time.sleep(float(opts.get("delay_s", 1.0)))
            return False
        if fault.kind == "content_policy":
            raise ApiError(422, {"detail": CONTENT_POLICY_DETAIL})
        if fault.kind == "rate_limit":
            retry_after = opts.get("retry_after", "3")
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            raise ApiError(429, {"detail": "Too many requests"}, headers)
        if fault.kind == "server_error":
            raise ApiError(500, {"detail": opts.get("message", "Internal Server Error")})
        if fault.kind == "unavailable":
            headers = {"X-Fal-Error-Type": "runner_scheduling_failure", "X-Fal-Retryable": "true"}
            raise ApiError(503, {"detail": "No runner available", "error_type": "runner_scheduling_failure"}, headers)
        if fault.kind == "gateway_timeout":
            headers = {"X-Fal-Error-Type": "request_timeout"}
            raise ApiError(504, {"detail": "Request timed out", "error_type": "request_timeout"}, headers)
        if fault.kind == "locked":
            raise ApiError(403, {"detail": "User is locked. Reason: Exhausted balance. Top up your balance."})
        if fault.kind == "forbidden":
            raise ApiError(403, {"detail": opts.get("message", "Not allowed to access this application")})
        if fault.kind == "truncated":
            self._send_bytes(handler, 200, b'{"request_id": "trunc', "application/json", rid)
            return True
        raise AssertionError(fault.kind)  # pragma: no cover

    # -- routes ----------------------------------------------------------------------------------------------

    def _submit(self, endpoint: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        if endpoint not in MODELS:
            raise ApiError(404, {"detail": f"Application '{endpoint}' not found"})
        self._validate(endpoint, body)
        fault = self._take_fault("submit", _JOB_FAULTS)
        job = _Job(
            request_id=request_id,
            model=endpoint,
            payload=body,
            outcome=fault.kind if fault else "ok",
            options=fault.options if fault else {},
            queue_polls=self.queue_polls,
            progress_polls=self.progress_polls,
            submitted_at=time.monotonic(),
        )
        owner, alias = endpoint.split("/")[:2]
        base = f"{self.url_prefix}/{owner}/{alias}/requests/{request_id}"  # the subpath is dropped (contract)
        with self._lock:
            self._state.jobs[request_id] = job
            self._state.urls[base] = ("result", request_id)
            self._state.urls[base + "/status"] = ("status", request_id)
            self._state.urls[base + "/cancel"] = ("cancel", request_id)
        return {
            "request_id": request_id,
            "response_url": self.url + base,
            "status_url": self.url + base + "/status",
            "cancel_url": self.url + base + "/cancel",
            "queue_position": job.queue_polls,
        }

    def _validate(self, endpoint: str, body: dict[str, Any]) -> None:
        required, optional = MODELS[endpoint]
        for name in required:
            if name not in body:
                raise _unprocessable(name, "Field required", "missing")
        for name, value in body.items():
            spec = required.get(name, optional.get(name))
            if spec is None:
                raise _unprocessable(name, "Extra inputs are not permitted", "extra_forbidden")
            if isinstance(spec, tuple) and all(isinstance(s, str) for s in spec):
                if value not in spec:
                    raise _unprocessable(name, f"Input should be one of {list(spec)}", "enum")
            elif isinstance(value, bool) and spec is not bool:
                raise _unprocessable(name, "Input should be a valid number", "type_error")
            elif not isinstance(value, spec):
                raise _unprocessable(name, "Input has the wrong type", "type_error")
        for name in ("image_url", "mask_url"):
            if name in body:
                self._decode(name, body[name])
        for name in ("canvas_size", "original_image_size", "original_image_location"):
            if name in body:
                value = body[name]
                if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise _unprocessable(name, "Input should be a list of two integers", "type_error")
        factor = body.get("upscale_factor", body.get("scale"))
        if factor is not None and not 1 <= factor <= 4:
            raise _unprocessable("upscale_factor", "Input should be between 1 and 4", "less_than_equal")
        if endpoint == "fal-ai/flux-pro/v1/fill":
            if self._decode("image_url", body["image_url"]).size != self._decode("mask_url", body["mask_url"]).size:
                raise _unprocessable("mask_url", "mask and image sizes differ")

    @staticmethod
    def _decode(name: str, value: object) -> Image.Image:
        if not isinstance(value, str) or not value.startswith("data:"):
            raise _unprocessable(name, "the stub accepts only data: URIs")
        header, _, encoded = value.partition(",")
        if not header.endswith(";base64"):
            raise _unprocessable(name, "data URI is not base64")
        try:
            img = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
            img.load()
        except (binascii.Error, ValueError, OSError) as exc:
            raise _unprocessable(name, f"could not decode the image: {type(exc).__name__}") from exc
        return img

    def _status(self, request_id: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
        with_logs = query.get("logs", ["0"])[-1] in ("1", "true", "True")
        with self._lock:
            job = self._state.jobs[request_id]
            if job.queue_polls > 0 and not job.cancelled:
                job.queue_polls -= 1
                return {"status": "IN_QUEUE", "queue_position": job.queue_polls, "response_url": self._url_of(job)}
            running = time.monotonic() - job.submitted_at < self.job_seconds
            if (job.progress_polls > 0 or running) and not job.cancelled:
                job.progress_polls = max(0, job.progress_polls - 1)
                logs = [{"message": "running", "level": "INFO", "timestamp": "2026-11-27T12:00:00"}]
                return {"status": "IN_PROGRESS", "logs": logs if with_logs else None, "response_url": self._url_of(job)}
        done: dict[str, Any] = {"status": "COMPLETED", "logs": [] if with_logs else None, "metrics": {}}
        done["response_url"] = self._url_of(job)
        if job.cancelled:
            done.update(error="Request was cancelled", error_type="request_cancelled")
        elif job.outcome == "job_error":
            done.update(
                error=job.options.get("message", "Runner disconnected"),
                error_type=job.options.get("error_type", "runner_disconnected"),
            )
        else:
            done["metrics"] = {"inference_time": 0.01}
        return done

    def job_intervals(self) -> list[tuple[float, float]]:
        """(submitted, result fetched) of every finished job, in time.monotonic() seconds."""
        with self._lock:
            return [(j.submitted_at, j.finished_at) for j in self._state.jobs.values() if j.finished_at is not None]

    def _url_of(self, job: _Job) -> str:
        owner, alias = job.model.split("/")[:2]
        return f"{self.url}{self.url_prefix}/{owner}/{alias}/requests/{job.request_id}"

    def _result(self, request_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            job = self._state.jobs[request_id]
            pending = job.queue_polls > 0 or job.progress_polls > 0
            pending = pending or time.monotonic() - job.submitted_at < self.job_seconds
            if not pending and job.finished_at is None:
                job.finished_at = time.monotonic()
        if job.cancelled:
            return 400, {"detail": "Request was cancelled", "error_type": "request_cancelled"}
        if pending:
            return 400, {"detail": "Request is still in progress"}
        if job.outcome == "job_error":
            body = {"detail": job.options.get("message", "Runner disconnected")}
            body["error_type"] = job.options.get("error_type", "runner_disconnected")
            return int(job.options.get("code", 500)), body
        if job.outcome == "job_content_policy":
            return 422, {"detail": CONTENT_POLICY_DETAIL}
        if job.output is None:
            job.output = self._output(job)
        return 200, job.output

    def _cancel(self, request_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            job = self._state.jobs[request_id]
            if job.queue_polls == 0 and job.progress_polls == 0:
                return 400, {"status": "ALREADY_COMPLETED"}
            job.cancelled = True
        return 202, {"status": "CANCELLATION_REQUESTED"}

    def _output(self, job: _Job) -> dict[str, Any]:
        body = job.payload
        source = self._decode("image_url", body["image_url"])
        width, height = source.size
        seed = int(body.get("seed", 42))
        if job.model == "fal-ai/bria/expand":
            size = (body["canvas_size"][0], body["canvas_size"][1])
        elif job.model == "fal-ai/flux-pro/v1/fill":
            size = (width, height)
        else:
            factor = float(body.get("scale", body.get("upscale_factor", 2)))
            size = (round(width * factor), round(height * factor))
        key = json.dumps({k: v for k, v in body.items() if k != "sync_mode"}, sort_keys=True)
        data = render_png(size, job.model, key, base=source)
        file_name = f"{job.request_id}.png"
        if body.get("sync_mode"):
            url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        else:
            with self._lock:
                self._state.files[file_name] = data
            url = f"{self.cdn_url}/files/{file_name}"
        image = {
            "url": url,
            "content_type": "image/png",
            "file_name": file_name,
            "file_size": len(data),
            "width": size[0],
            "height": size[1],
        }
        if job.model == "fal-ai/flux-pro/v1/fill":
            nsfw = job.outcome == "nsfw_output"
            return {
                "images": [image],
                "seed": seed,
                "has_nsfw_concepts": [nsfw],
                "prompt": body["prompt"],
                "timings": {"inference": 0.01},
            }
        return {"image": image, "seed": seed, "timings": {"inference": 0.01}}

    def _send_cdn(self, handler: StubHandler, path: str) -> None:
        name = path.removeprefix("/files/")
        with self._lock:
            data = self._state.files.get(name)
        if data is None:
            raise ApiError(404, {"detail": "Not Found"})
        self._send_bytes(handler, 200, data, "image/png")
