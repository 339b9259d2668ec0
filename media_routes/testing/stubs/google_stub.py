"""A stub of the Gemini API (image generateContent, Veo predictLongRunning) on 127.0.0.1.

Built on the standard library (``ThreadingHTTPServer`` in a background thread, port 0). It reproduces
the shapes of shared/reference/provider-contracts.md sections 1, 2, 6 and 7:

- Routes, under both ``/v1beta`` and ``/v1`` (google-genai 3.x calls ``/v1``):
  ``POST models/{model}:generateContent``, ``POST models/{model}:predictLongRunning``,
  ``GET models/{model}/operations/{id}``, ``GET files/{id}:download?alt=media`` (a 302 to a signed
  ``/media/{token}`` URL that needs no key).
- Auth: the key in ``x-goog-api-key`` (or ``?key=``, which the contract says also works). A wrong key
  gets 400 ``API_KEY_INVALID``; no key at all gets 403 ``PERMISSION_DENIED`` (contract section 7).
- Unknown model, or a model used with the wrong method: 404 ``NOT_FOUND``. Malformed JSON, unknown
  fields, bad enum values, undecodable images: 400 ``INVALID_ARGUMENT``.
- Image responses: for thinking models (3 Pro) a thought text part and a small thought image come
  before the final image; ``usageMetadata``, ``modelVersion`` and ``responseId`` are filled in. Images
  are deterministic PNGs from a hash of model, prompt, seed, size and input images, at the size the
  aspect ratio and image size imply. Veo videos are H.264 MP4s made with PyAV (tiny by default, 128x72 or 72x128;
  ``video_long_side`` sets a realistic size), 24 fps, the requested duration, no audio track, a camera move over
  the input image (``video_motion``: a push-in, or a cut, a whip pan or a wrap-around scroll).
- Failures switchable per test with :meth:`GoogleStub.fail_next` (see ``FAULTS``).

Every request is recorded (method, raw path with query, headers with the ``x-goog-api-key`` value
replaced by ``<redacted>``, parsed JSON body), so tests can count calls and check where the key went.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
from PIL import Image

from media_routes.testing.stubs.base import Fault, StubHandler, StubServer, image_video_frames

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "test-key-123"
REDACTED = "<redacted>"

# model id -> (thinking model, honours imageSize, output image tokens per image size)
IMAGE_MODELS: dict[str, tuple[bool, bool, dict[str, int]]] = {
    "gemini-3-pro-image-preview": (True, True, {"1K": 1120, "2K": 1120, "4K": 2000}),
    "gemini-3.1-flash-image-preview": (True, True, {"1K": 1120, "2K": 1120, "4K": 2000}),
    "gemini-2.5-flash-image": (False, False, {"1K": 1290, "2K": 1290, "4K": 1290}),
}
VIDEO_MODELS = frozenset(
    {
        "veo-3.1-generate-preview",
        "veo-3.1-fast-generate-preview",
        "veo-3.0-generate-001",
        "veo-3.0-fast-generate-001",
        "veo-2.0-generate-001",
    }
)
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_SIZES = {"1K": 1, "2K": 2, "4K": 4}
# Sizes the contract gives for 3 Pro at 1K (x2, x4 for 2K, 4K); other ratios: ~1 MP rounded to 16 px.
KNOWN_1K_SIZES = {"1:1": (1024, 1024), "16:9": (1376, 768), "9:16": (768, 1376)}
VEO_SIZES = {"16:9": (128, 72), "9:16": (72, 128)}
VEO_FPS = 24
THOUGHT_IMAGE_SIZE = (64, 64)
DRAFT_IMAGE_SIZE = (96, 96)

API_KEY_INVALID_BODY: dict[str, Any] = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    }
}
UNREGISTERED_CALLER_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)

# fault kind -> routes it applies to by default. HTTP faults answer instead of the route; content faults
# shape a 200 answer (generateContent) or the outcome of the next submitted Veo job (predictLongRunning).
_ALL_API_ROUTES = frozenset({"generateContent", "predictLongRunning", "operation", "download"})
FAULTS: dict[str, frozenset[str]] = {
    "rate_limit": _ALL_API_ROUTES,  # 429 RESOURCE_EXHAUSTED, per-minute quotaId, RetryInfo retry_delay (default "7s")
    "quota_exhausted": _ALL_API_ROUTES,  # 429 RESOURCE_EXHAUSTED, per-day quotaId (RetryInfo too, as live)
    "permission_denied": _ALL_API_ROUTES,  # 403 PERMISSION_DENIED
    "server_error": _ALL_API_ROUTES,  # 500 INTERNAL
    "unavailable": _ALL_API_ROUTES,  # 503 UNAVAILABLE ("The model is overloaded")
    "deadline": _ALL_API_ROUTES,  # 504 DEADLINE_EXCEEDED
    "slow": _ALL_API_ROUTES,  # sleeps delay_s (default 2.0) then answers normally
    "truncated": _ALL_API_ROUTES,  # 200 with a cut-off JSON body
    "blocked_prompt": frozenset({"generateContent"}),  # 200, promptFeedback.blockReason (block_reason), no candidates
    "no_candidates": frozenset({"generateContent"}),  # 200 with usageMetadata and an empty candidate list, no feedback
    # the image is generated (and would be billed), then the answer is held back delay_s (default 3.0) before it is
    # sent: a client whose read timeout is shorter gives up after the server finished ("read timeout after done")
    "late_answer": frozenset({"generateContent"}),
    # 200, finishReason (finish_reason, default IMAGE_SAFETY), no final image; with_thoughts=True keeps the thought
    # parts (an interim thought image included) that a thinking model produced before the output was blocked
    "image_safety": frozenset({"generateContent"}),
    "text_only": frozenset({"generateContent"}),  # 200, finishReason STOP with a text part and no image
    "two_images": frozenset({"generateContent"}),  # 200, a non-thought draft image part before the final one
    "rai_filtered": frozenset({"predictLongRunning"}),  # next job ends done with raiMediaFilteredCount, no samples
    "veo_error": frozenset({"predictLongRunning"}),  # next job ends done with error {code (default 13), message}
    "veo_inline": frozenset({"predictLongRunning"}),  # next job's video comes back as encodedVideo (base64)
}
_HTTP_FAULTS = frozenset(
    {
        "rate_limit",
        "quota_exhausted",
        "permission_denied",
        "server_error",
        "unavailable",
        "deadline",
        "slow",
        "truncated",
    }
)

_PATH_RE = re.compile(
    r"^/(?P<version>v1|v1beta)/(?:"
    r"models/(?P<model>[^/:]+):(?P<method>generateContent|predictLongRunning)"
    r"|(?P<op_name>models/(?P<op_model>[^/:]+)/operations/(?P<op_id>[A-Za-z0-9_\-]+))"
    r"|files/(?P<file_id>[a-z0-9]+):download"
    r")$"
)
_MEDIA_RE = re.compile(r"^/media/(?P<token>[A-Za-z0-9]+)$")

_GENERATE_FIELDS = {"contents", "generationConfig", "safetySettings", "systemInstruction", "tools", "toolConfig"}
_GENERATE_FIELDS |= {"cachedContent", "labels"}
_GENERATION_CONFIG_FIELDS = {
    "responseModalities",
    "imageConfig",
    "seed",
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "thinkingConfig",
    "responseMimeType",
    "presencePenalty",
    "frequencyPenalty",
    "mediaResolution",
}
_PART_FIELDS = {"text", "inlineData", "fileData", "thought", "thoughtSignature", "functionCall", "functionResponse"}
_PART_FIELDS |= {"executableCode", "codeExecutionResult", "videoMetadata", "mediaResolution"}
_VEO_INSTANCE_FIELDS = {"prompt", "image", "lastFrame", "referenceImages", "video"}
_VEO_PARAMETER_FIELDS = {
    "aspectRatio",
    "resolution",
    "durationSeconds",
    "negativePrompt",
    "personGeneration",
    "sampleCount",
    "enhancePrompt",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _camel_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The REST API accepts snake_case and camelCase field names; normalise one level to camelCase."""
    return {_camel(k): v for k, v in obj.items()}


def _b64decode(data: str) -> bytes:
    """Standard or URL-safe base64, padded or not (the SDK sends URL-safe; contract section 7)."""
    cleaned = data.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    return base64.b64decode(cleaned, validate=True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def image_size_for(aspect_ratio: str, image_size: str = "1K") -> tuple[int, int]:
    """Pixel size the stub renders for an aspect ratio and image size (1K long side about 1024)."""
    scale = IMAGE_SIZES[image_size]
    if aspect_ratio in KNOWN_1K_SIZES:
        width, height = KNOWN_1K_SIZES[aspect_ratio]
    else:
        a, b = (int(x) for x in aspect_ratio.split(":"))
        width = round(math.sqrt(1024 * 1024 * a / b) / 16) * 16
        height = round(math.sqrt(1024 * 1024 * b / a) / 16) * 16
    return width * scale, height * scale


def nearest_aspect_ratio(width: int, height: int) -> str:
    def distance(r: str) -> float:
        a, b = (int(x) for x in r.split(":"))
        return abs(math.log((width / height) / (a / b)))

    return min(ASPECT_RATIOS, key=distance)


def _seed_of(*parts: bytes | str) -> np.random.Generator:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return np.random.default_rng(int.from_bytes(digest.digest()[:8], "big"))


def render_png(size: tuple[int, int], *key: bytes | str, base: Image.Image | None = None) -> bytes:
    """A deterministic PNG: a 6x8 grid of colours from the hash of ``key``, blended at 10 % over ``base`` if given
    (visibly not the input, its colours within about 15 CIEDE2000: a model that keeps the brand colours, which the
    stages verify in its output before restoring them)."""
    rng = _seed_of(*key)
    grid = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(grid, "RGB").resize(size, Image.Resampling.NEAREST)
    if base is not None:
        img = Image.blend(base.convert("RGB").resize(size, Image.Resampling.BILINEAR), img, 0.10)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def veo_size(aspect_ratio: str, long_side: int | None = None) -> tuple[int, int]:
    """The stub's video size: :data:`VEO_SIZES` (tiny), or ``long_side`` px on the long side (even dimensions)."""
    width, height = VEO_SIZES[aspect_ratio]
    if long_side is None:
        return width, height
    scale = long_side / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def render_mp4(
    aspect_ratio: str,
    duration_s: int,
    *key: bytes | str,
    image_png: bytes | None = None,
    long_side: int | None = None,
    motion: str = "push_in",
) -> bytes:
    """An H.264 MP4 (yuv420p, 24 fps, no audio), tiny unless ``long_side`` is given: a camera move (``motion``, see
    ``base.image_video_frames``; default a slow push-in) over ``image_png`` when given, else a flat colour from the
    hash of ``key``."""
    width, height = veo_size(aspect_ratio, long_side)
    colour = _seed_of(*key).integers(40, 216, 3)
    pictures = image_video_frames(image_png, (width, height), duration_s * VEO_FPS, motion) if image_png else None
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=VEO_FPS)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        stream.codec_context.thread_count = 1
        for index in range(duration_s * VEO_FPS):
            level = np.clip(colour + (index % VEO_FPS) * 2, 0, 255).astype(np.uint8)
            picture = pictures[index] if pictures else np.broadcast_to(level, (height, width, 3)).copy()
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, VEO_FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def error_body(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def quota_body(model: str, *, per_day: bool, retry_delay: str | None) -> dict[str, Any]:
    """429 RESOURCE_EXHAUSTED as the Gemini API sends it (QuotaFailure, Help, RetryInfo)."""
    period = "PerDay" if per_day else "PerMinute"
    metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": metric,
                    "quotaId": f"GenerateRequests{period}PerProjectPerModel-FreeTier",
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": "250" if per_day else "10",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n"
        f"* Quota exceeded for metric: {metric}"
    )
    return error_body(429, "RESOURCE_EXHAUSTED", message, details)


class ApiError(Exception):
    """Raised inside a handler to answer with a Google error body."""

    def __init__(self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.body = error_body(code, status, message, details)
        self.code = code


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # raw, including the query string
    route: str  # generateContent | predictLongRunning | operation | download | media | unknown
    headers: dict[str, str]  # lower-cased names; the x-goog-api-key value replaced by <redacted>
    body: Any  # parsed JSON, None when empty, or the raw text when it was not JSON
    auth: str | None  # "header", "query" or None: where a key was found
    key_valid: bool


@dataclass
class _Operation:
    model: str
    name: str
    prompt: str
    aspect_ratio: str
    duration_s: int
    outcome: str  # video | rai_filtered | veo_error | veo_inline
    options: dict[str, Any]
    polls_left: int
    file_id: str | None = None
    image_png: bytes | None = None
    reported_done: bool = False
    long_side: int | None = None  # the video's size and camera move, as the stub was set when it was submitted
    motion: str = "push_in"


@dataclass
class _State:
    late_answers: int = 0  # answers generated and then held back (late_answer)
    billable_answers: int = 0  # 200s of generateContent (truncated, blocked and late ones too) and finished Veo jobs
    operations: dict[str, _Operation] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    media_tokens: dict[str, str] = field(default_factory=dict)
    counter: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0


class GoogleStub(StubServer[RecordedRequest]):
    """The stub server. Use as a context manager, or ``start()`` / ``stop()``."""

    name = "google-stub"
    faults = FAULTS
    json_content_type = "application/json; charset=UTF-8"
    json_indent = 2

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        polls_until_done: int = 2,
        download_redirect_host: str = "127.0.0.1",
        video_long_side: int | None = None,
        video_motion: str = "push_in",
    ) -> None:
        self.api_key = api_key
        self.polls_until_done = polls_until_done
        # Veo videos: None keeps them tiny (128x72); e.g. 640 makes 640x360, big enough for a brand to be seen
        self.video_long_side = video_long_side
        self.video_motion = video_motion  # base.VIDEO_MOTIONS: push_in, or a move an alignment cannot follow
        self.download_redirect_host = download_redirect_host
        self._state = _State()
        super().__init__()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (no version, no trailing slash)."""
        return self._base_url()

    # -- test API --------------------------------------------------------------------------------------

    def fail_next(self, kind: str, count: int = 1, *, route: str | Iterable[str] | None = None, **options: Any) -> None:
        """Make the next ``count`` matching requests fail (or vary) as ``kind`` (one of ``FAULTS``).

        ``route`` narrows where it applies (default: ``FAULTS[kind]``). Options: ``retry_delay`` ("7s", or
        None for no RetryInfo) and ``retry_after_header`` for rate_limit/quota_exhausted; ``delay_s`` for
        slow and late_answer; ``block_reason`` for blocked_prompt; ``finish_reason`` for image_safety;
        ``code``/``message`` for veo_error; ``reasons`` for rai_filtered.
        """
        super().fail_next(kind, count, route=route, **options)

    @property
    def billable_answers(self) -> int:
        """Answers the live service may bill: every generateContent 200 (truncated, blocked, held back or not) and
        every Veo job reported done, except one whose videos were all filtered (not charged)."""
        with self._lock:
            return self._state.billable_answers

    def _count_billable(self) -> None:
        with self._lock:
            self._state.billable_answers += 1

    def finish_jobs(self) -> int:
        """Let every Veo job still running finish at its next poll (a job a client gave up waiting on, which the
        service completes anyway); returns how many were running."""
        with self._lock:
            running = [op for op in self._state.operations.values() if op.polls_left > 0]
            for op in running:
                op.polls_left = 0
        return len(running)

    @property
    def late_answers(self) -> int:
        """How many answers were generated in full and then held back past the client's patience (late_answer)."""
        with self._lock:
            return self._state.late_answers

    def wait_idle(self, timeout_s: float = 15.0) -> None:
        """Wait until no request is being handled (a held-back late answer counts as billable only once it has
        been generated and its hold is over), so counts read afterwards include every answer already asked for."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if self._state.in_flight == 0:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Google stub still handles {self._state.in_flight} request(s)")
            time.sleep(0.02)

    @property
    def peak_in_flight(self) -> int:
        """Most requests the server was handling at the same time."""
        with self._lock:
            return self._state.peak_in_flight

    # -- request handling --------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self.api_key, REDACTED)

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._state.counter += 1
            counter = self._state.counter
        token = hashlib.sha256(f"{prefix}{counter}".encode()).hexdigest()
        return token[:12] if prefix != "resp" else f"stub{counter:04d}{token[:16]}"

    def _handle(self, handler: StubHandler, method: str) -> None:
        with self._lock:
            self._state.in_flight += 1
            self._state.peak_in_flight = max(self._state.peak_in_flight, self._state.in_flight)
        try:
            self._dispatch(handler, method)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
        finally:
            with self._lock:
                self._state.in_flight -= 1

    def _dispatch(self, handler: StubHandler, method: str) -> None:
        split = urlsplit(handler.path)
        body, json_error = self._read_body(handler)

        header_key = handler.headers.get("x-goog-api-key")
        query_keys = parse_qs(split.query).get("key")
        query_key = query_keys[0] if query_keys else None
        presented = header_key if header_key is not None else query_key
        auth = "header" if header_key is not None else "query" if query_key is not None else None
        headers = {k.lower(): (REDACTED if k.lower() == "x-goog-api-key" else v) for k, v in handler.headers.items()}

        match = _PATH_RE.match(split.path)
        media = _MEDIA_RE.match(split.path)
        groups: dict[str, str | None] = match.groupdict() if match else {}
        if match:
            route = groups["method"] or ("operation" if groups["op_name"] else "download")
        else:
            route = "media" if media else "unknown"

        record = RecordedRequest(
            method=method,
            path=handler.path,
            route=route,
            headers=headers,
            body=body,
            auth=auth,
            key_valid=presented == self.api_key,
        )
        self._record(record)

        try:
            if media and method == "GET":
                self._send_media(handler, media.group("token"))
                return
            if not match:
                raise ApiError(404, "NOT_FOUND", f"Requested entity was not found: {method} {split.path}")
            if presented is None:
                raise ApiError(403, "PERMISSION_DENIED", UNREGISTERED_CALLER_MESSAGE)
            if presented != self.api_key:
                self._send_json(handler, 400, API_KEY_INVALID_BODY)
                return
            self._check_method(route, method, groups)
            fault = self._take_fault(route, _HTTP_FAULTS)
            if fault is not None and self._apply_http_fault(handler, fault, groups["model"] or groups["op_model"]):
                return
            if json_error is not None:
                raise _invalid(f"Invalid JSON payload received. {json_error}")
            version = groups["version"] or "v1beta"
            if route == "generateContent":
                answer = self._generate(groups["model"], body)
                self._count_billable()
                self._send_json(handler, 200, answer)
            elif route == "predictLongRunning":
                self._send_json(handler, 200, self._submit(groups["model"], body))
            elif route == "operation":
                self._send_json(handler, 200, self._operation(groups["op_name"], groups["op_id"], version))
            else:
                self._redirect_download(handler, groups["file_id"], split.query)
        except ApiError as err:
            self._send_json(handler, err.code, err.body)

    def _check_method(self, route: str, method: str, groups: Mapping[str, str | None]) -> None:
        expected = "POST" if route in ("generateContent", "predictLongRunning") else "GET"
        if method != expected:
            raise ApiError(404, "NOT_FOUND", f"Method {method} is not supported on this path.")
        model = groups.get("model") or groups.get("op_model")
        if route == "generateContent" and model not in IMAGE_MODELS:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version {groups['version']}, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their supported methods.",
            )
        if route == "predictLongRunning" and model not in VIDEO_MODELS:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version {groups['version']}, or is not supported for "
                "predictLongRunning. Call ListModels to see the list of available models and their supported methods.",
            )

    def _apply_http_fault(self, handler: StubHandler, fault: Fault, model: str | None) -> bool:
        """Answer with the fault; False for 'slow', which delays and lets the normal answer go out."""
        opts = fault.options
        model = model or "unknown"
        if fault.kind == "slow":
            self._stopping.wait(float(opts.get("delay_s", 2.0)))
            return False
        if fault.kind in ("rate_limit", "quota_exhausted"):
            body = quota_body(model, per_day=fault.kind == "quota_exhausted", retry_delay=opts.get("retry_delay", "7s"))
            extra = {"Retry-After": str(opts["retry_after_header"])} if "retry_after_header" in opts else {}
            self._send_json(handler, 429, body, extra)
        elif fault.kind == "permission_denied":
            message = "Your API key was reported as leaked. Please use another API key."
            self._send_json(handler, 403, error_body(403, "PERMISSION_DENIED", message))
        elif fault.kind == "server_error":
            message = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
            self._send_json(handler, 500, error_body(500, "INTERNAL", message))
        elif fault.kind == "unavailable":
            self._send_json(
                handler, 503, error_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
            )
        elif fault.kind == "deadline":
            self._send_json(
                handler, 504, error_body(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")
            )
        elif fault.kind == "truncated":
            if urlsplit(handler.path).path.endswith(":generateContent"):
                self._count_billable()
            self._send_bytes(
                handler, 200, b'{"candidates": [{"content": {"role": "model", "parts": [{"inlin', "application/json"
            )
        return True

    # -- generateContent ---------------------------------------------------------------------------------

    def _parse_generate(self, body: Any) -> tuple[str, list[Image.Image], dict[str, Any], dict[str, Any]]:
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")
        body = _camel_keys(body)
        for name in body:
            if name not in _GENERATE_FIELDS:
                raise _invalid(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise _invalid("* GenerateContentRequest.contents: contents is not specified\n")
        texts: list[str] = []
        images: list[Image.Image] = []
        for c_index, content in enumerate(contents):
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not parts:
                raise _invalid(
                    f"* GenerateContentRequest.contents[{c_index}].parts: contents.parts must not be empty.\n"
                )
            for p_index, part in enumerate(parts):
                where = f"contents[{c_index}].parts[{p_index}]"
                if not isinstance(part, dict):
                    raise _invalid(f"Invalid value at '{where}': expected an object")
                part = _camel_keys(part)
                for name in part:
                    if name not in _PART_FIELDS:
                        raise _invalid(f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}'.")
                if "text" in part:
                    if not isinstance(part["text"], str):
                        raise _invalid(f"Invalid value at '{where}.text': expected a string")
                    texts.append(part["text"])
                elif "inlineData" in part:
                    images.append(self._decode_inline(part["inlineData"], where))
                elif "fileData" not in part:
                    raise _invalid(
                        f"* GenerateContentRequest.{where}.data: "
                        "required oneof field 'data' must have one initialized field"
                    )
        config = body.get("generationConfig") or {}
        if not isinstance(config, dict):
            raise _invalid("Invalid value at 'generation_config': expected an object")
        config = _camel_keys(config)
        for name in config:
            if name not in _GENERATION_CONFIG_FIELDS:
                raise _invalid(
                    f"Invalid JSON payload received. Unknown name \"{name}\" at 'generation_config': Cannot find field."
                )
        for modality in config.get("responseModalities") or []:
            if modality not in ("TEXT", "IMAGE", "AUDIO"):
                raise _invalid(f"Invalid value at 'generation_config.response_modalities[0]', \"{modality}\"")
        image_config = config.get("imageConfig") or {}
        if not isinstance(image_config, dict):
            raise _invalid("Invalid value at 'generation_config.image_config': expected an object")
        image_config = _camel_keys(image_config)
        for name in image_config:
            if name not in ("aspectRatio", "imageSize"):
                raise _invalid(
                    f'Invalid JSON payload received. Unknown name "{name}" at '
                    "'generation_config.image_config': Cannot find field."
                )
        if "aspectRatio" in image_config and image_config["aspectRatio"] not in ASPECT_RATIOS:
            raise _invalid(f"Unsupported aspect ratio: {image_config['aspectRatio']}")
        if "imageSize" in image_config and image_config["imageSize"] not in IMAGE_SIZES:
            raise _invalid(f"Unsupported image size: {image_config['imageSize']}. Supported sizes are 1K, 2K and 4K.")
        if "seed" in config and not isinstance(config["seed"], int):
            raise _invalid("Invalid value at 'generation_config.seed' (TYPE_INT32)")
        if not texts and not images:
            raise _invalid("* GenerateContentRequest.contents: contents must contain a text or an image part\n")
        return "\n".join(texts), images, config, image_config

    def _decode_inline(self, blob: Any, where: str) -> Image.Image:
        if not isinstance(blob, dict):
            raise _invalid(f"Invalid value at '{where}.inline_data': expected an object")
        blob = _camel_keys(blob)
        mime = blob.get("mimeType")
        data = blob.get("data")
        if not isinstance(mime, str) or not mime.startswith("image/"):
            raise _invalid(f"* GenerateContentRequest.{where}.inline_data.mime_type: unsupported MIME type {mime!r}\n")
        if not isinstance(data, str):
            raise _invalid(f"* GenerateContentRequest.{where}.inline_data.data: data is required\n")
        try:
            raw = _b64decode(data)
            image = Image.open(io.BytesIO(raw))
            image.load()
        except (binascii.Error, ValueError, OSError) as exc:
            raise _invalid(
                "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
            ) from exc
        return image

    def _generate(self, model: str | None, body: Any) -> dict[str, Any]:
        assert model is not None
        prompt, images, config, image_config = self._parse_generate(body)
        thinking, honours_size, image_tokens = IMAGE_MODELS[model]
        image_size = image_config.get("imageSize", "1K") if honours_size else "1K"
        aspect = image_config.get("aspectRatio")
        if aspect is None:
            aspect = nearest_aspect_ratio(*images[0].size) if images else "1:1"
        size = image_size_for(aspect, image_size)
        seed = str(config.get("seed", ""))
        digests = [hashlib.sha256(img.tobytes()).hexdigest() for img in images]
        response_id = self._next_id("resp")
        prompt_tokens = [{"modality": "TEXT", "tokenCount": 8 + len(prompt) // 4}]
        if images:
            prompt_tokens.append({"modality": "IMAGE", "tokenCount": 258 * len(images)})
        usage: dict[str, Any] = {
            "promptTokenCount": 8 + len(prompt) // 4 + 258 * len(images),
            "candidatesTokenCount": image_tokens[image_size] + 10,
            "candidatesTokensDetails": [
                {"modality": "TEXT", "tokenCount": 10},
                {"modality": "IMAGE", "tokenCount": image_tokens[image_size]},
            ],
            "promptTokensDetails": prompt_tokens,
        }
        if thinking:
            usage["thoughtsTokenCount"] = 200
        usage["totalTokenCount"] = (
            usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)
        )
        envelope: dict[str, Any] = {"usageMetadata": usage, "modelVersion": model, "responseId": response_id}

        fault = self._take_fault("generateContent", frozenset(FAULTS) - _HTTP_FAULTS)
        kind = fault.kind if fault else None
        if kind == "blocked_prompt":
            reason = fault.options.get("block_reason", "SAFETY") if fault else "SAFETY"
            usage.pop("candidatesTokenCount")
            usage.pop("candidatesTokensDetails")
            usage.pop("thoughtsTokenCount", None)
            usage["totalTokenCount"] = usage["promptTokenCount"]
            feedback = {
                "blockReason": reason,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
                ],
            }
            return {"promptFeedback": feedback, **envelope}
        if kind == "image_safety":
            finish = fault.options.get("finish_reason", "IMAGE_SAFETY") if fault else "IMAGE_SAFETY"
            candidate: dict[str, Any] = {
                "finishReason": finish,
                "finishMessage": "Unable to show the generated image: it may violate the image safety policy.",
                "index": 0,
            }
            if fault is not None and fault.options.get("with_thoughts"):
                candidate["content"] = {"role": "model", "parts": self._thought_parts(model, prompt, seed)}
            return {"candidates": [candidate], **envelope}
        if kind == "no_candidates":
            return {"candidates": [], **envelope}
        if kind == "text_only":
            content = {
                "role": "model",
                "parts": [{"text": "I can describe the scene, but here is no image this time."}],
            }
            return {"candidates": [{"content": content, "finishReason": "STOP", "index": 0}], **envelope}

        base = images[0] if images else None
        final = render_png(size, model, prompt, seed, aspect, image_size, *digests, base=base)
        parts: list[dict[str, Any]] = []
        if thinking:
            parts.extend(self._thought_parts(model, prompt, seed))
        parts.append({"text": "Here is the image you asked for."})
        if kind == "two_images":
            draft = render_png(DRAFT_IMAGE_SIZE, "draft", model, prompt, seed)
            parts.append({"inlineData": {"mimeType": "image/png", "data": _b64(draft)}})
        signature = _b64(hashlib.sha256(f"sig{response_id}".encode()).digest())
        parts.append({"inlineData": {"mimeType": "image/png", "data": _b64(final)}, "thoughtSignature": signature})
        if kind == "late_answer" and fault is not None:
            with self._lock:
                self._state.late_answers += 1
            self._stopping.wait(float(fault.options.get("delay_s", 3.0)))
        return {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            **envelope,
        }

    @staticmethod
    def _thought_parts(model: str, prompt: str, seed: str) -> list[dict[str, Any]]:
        thought_png = render_png(THOUGHT_IMAGE_SIZE, "thought", model, prompt, seed)
        return [
            {"text": "**Composing the scene**\n\nPlanning layout and light.", "thought": True},
            {"inlineData": {"mimeType": "image/png", "data": _b64(thought_png)}, "thought": True},
        ]

    # -- Veo -----------------------------------------------------------------------------------------------

    def _submit(self, model: str | None, body: Any) -> dict[str, Any]:
        assert model is not None
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")
        for name in body:
            if name not in ("instances", "parameters"):
                raise _invalid(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
            raise _invalid("* PredictLongRunningRequest.instances: instances is required\n")
        instance = instances[0]
        for name in instance:
            if name not in _VEO_INSTANCE_FIELDS:
                raise _invalid(f"`{name}` isn't supported by this model.")
        prompt = instance.get("prompt", "")
        if not isinstance(prompt, str) or (not prompt.strip() and "image" not in instance):
            raise _invalid("A text prompt or an input image is required.")
        for name in ("image", "lastFrame"):
            if name in instance:
                image = instance[name]
                if not isinstance(image, dict) or not isinstance(image.get("bytesBase64Encoded"), str):
                    raise _invalid(f"`{name}` must carry bytesBase64Encoded and mimeType.")
                try:
                    Image.open(io.BytesIO(_b64decode(image["bytesBase64Encoded"]))).load()
                except (binascii.Error, ValueError, OSError) as exc:
                    raise _invalid("Unable to process input image.") from exc
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise _invalid("`parameters` must be an object.")
        for name in params:
            if name not in _VEO_PARAMETER_FIELDS:
                raise _invalid(f"`{name}` isn't supported by this model.")
        aspect = params.get("aspectRatio", "16:9")
        duration = params.get("durationSeconds", 8)
        resolution = params.get("resolution", "720p")
        if aspect not in VEO_SIZES:
            raise _invalid(f"Aspect ratio {aspect} is not supported. Supported: 16:9, 9:16.")
        if duration not in (4, 6, 8) or isinstance(duration, bool):
            raise _invalid(f"The number value for `durationSeconds` is out of bound: {duration}. Supported: 4, 6, 8.")
        if resolution not in ("720p", "1080p", "4k"):
            raise _invalid(f"Resolution {resolution} is not supported.")
        if resolution in ("1080p", "4k") and duration != 8:
            raise _invalid(f"{resolution} requires durationSeconds 8.")

        fault = self._take_fault("predictLongRunning", frozenset({"rai_filtered", "veo_error", "veo_inline"}))
        op_id = self._next_id("op")
        name = f"models/{model}/operations/{op_id}"
        operation = _Operation(
            model=model,
            name=name,
            prompt=prompt,
            aspect_ratio=aspect,
            duration_s=int(duration),
            image_png=_b64decode(instance["image"]["bytesBase64Encoded"]) if "image" in instance else None,
            outcome=fault.kind if fault else "video",
            options=fault.options if fault else {},
            polls_left=self.polls_until_done,
            long_side=self.video_long_side,
            motion=self.video_motion,
        )
        with self._lock:
            self._state.operations[op_id] = operation
        return {"name": name}

    def _operation(self, name: str | None, op_id: str | None, version: str) -> dict[str, Any]:
        with self._lock:
            operation = self._state.operations.get(op_id or "")
            if operation is not None and operation.name != name:
                operation = None
            if operation is not None and operation.polls_left > 0:
                operation.polls_left -= 1
                return {"name": operation.name, "done": False}
        if operation is None:
            raise ApiError(404, "NOT_FOUND", f"Operation {name} not found.")
        response_type = f"type.googleapis.com/google.ai.generativelanguage.{version}.PredictLongRunningResponse"
        with self._lock:
            first_done, operation.reported_done = not operation.reported_done, True
        if first_done and operation.outcome != "rai_filtered":
            self._count_billable()
        if operation.outcome == "veo_error":
            code = int(operation.options.get("code", 13))
            message = operation.options.get("message", "Video generation failed due to an internal error.")
            return {"name": operation.name, "done": True, "error": {"code": code, "message": message}}
        if operation.outcome == "rai_filtered":
            reasons = operation.options.get(
                "reasons",
                [
                    "We encountered an issue with the audio for your prompt. Your prompt couldn't be submitted. "
                    "You have not been charged for this attempt."
                ],
            )
            result = {"raiMediaFilteredCount": len(reasons), "raiMediaFilteredReasons": reasons}
            return {
                "name": operation.name,
                "done": True,
                "response": {"@type": response_type, "generateVideoResponse": result},
            }
        if operation.outcome == "veo_inline":
            video_bytes = render_mp4(
                operation.aspect_ratio,
                operation.duration_s,
                operation.model,
                operation.prompt,
                image_png=operation.image_png,
                long_side=operation.long_side,
                motion=operation.motion,
            )
            video: dict[str, Any] = {"encodedVideo": _b64(video_bytes), "encoding": "video/mp4"}
        else:
            with self._lock:
                if operation.file_id is None:
                    operation.file_id = self._next_id_unlocked()
                    self._state.files[operation.file_id] = render_mp4(
                        operation.aspect_ratio,
                        operation.duration_s,
                        operation.model,
                        operation.prompt,
                        image_png=operation.image_png,
                        long_side=operation.long_side,
                        motion=operation.motion,
                    )
                file_id = operation.file_id
            video = {"uri": f"{self.url}/{version}/files/{file_id}:download?alt=media"}
        result = {"generatedSamples": [{"video": video}]}
        return {
            "name": operation.name,
            "done": True,
            "response": {"@type": response_type, "generateVideoResponse": result},
        }

    def _next_id_unlocked(self) -> str:
        self._state.counter += 1
        return hashlib.sha256(f"file{self._state.counter}".encode()).hexdigest()[:12]

    def _redirect_download(self, handler: StubHandler, file_id: str | None, query: str) -> None:
        if parse_qs(query).get("alt") != ["media"]:
            raise _invalid("Download requires alt=media.")
        with self._lock:
            if file_id not in self._state.files:
                raise ApiError(404, "NOT_FOUND", f"File {file_id} not found.")
            token = hashlib.sha256(f"media{file_id}{self.api_key}".encode()).hexdigest()[:32]
            self._state.media_tokens[token] = file_id or ""
        location = f"http://{self.download_redirect_host}:{self.port}/media/{token}"
        self._send_bytes(handler, 302, b"", "text/html; charset=UTF-8", {"Location": location})

    def _send_media(self, handler: StubHandler, token: str) -> None:
        with self._lock:
            file_id = self._state.media_tokens.get(token)
            data = self._state.files.get(file_id or "")
        if data is None:
            raise ApiError(404, "NOT_FOUND", "Media not found.")
        self._send_bytes(handler, 200, data, "video/mp4")
