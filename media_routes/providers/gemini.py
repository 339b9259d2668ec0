"""httpx adapters for the Gemini API: image generation/editing (generateContent) and Veo (predictLongRunning).

Contract: shared/reference/provider-contracts.md sections 1, 2 and 7.

- The key goes only in the ``x-goog-api-key`` header, never in a URL, a log line or an error message,
  and only to the origin of ``base_url`` (a redirect or file URI on another host gets no key).
- Every failure becomes a typed :mod:`media_routes.providers.errors` error; a 200 without an image is
  :class:`ContentBlocked`. Adapters make one attempt per call: wrap calls in
  :func:`media_routes.providers.retry.call_with_retries` for the retry policy.
- One ``httpx.Client`` per adapter instance, explicit timeouts, ``close()`` or ``with``.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import io
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import urljoin

import av
import httpx
from PIL import Image, UnidentifiedImageError

from media_routes.providers import receipts
from media_routes.providers.errors import (
    AuthError,
    BadRequest,
    ContentBlocked,
    PermissionDenied,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    ServerError,
    redact,
)
from media_routes.providers.http import HttpProviderClient
from media_routes.providers.poll import poll_until_done

log = logging.getLogger(__name__)

PROVIDER = "google"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
# The contract's endpoints are v1beta; google-genai 3.x defaults to v1 (contract section 7), so it is configurable.
DEFAULT_API_VERSION = "v1beta"
API_KEY_HEADER = "x-goog-api-key"
ENV_API_KEY = "GEMINI_API_KEY"
ENV_BASE_URL = "GEMINI_BASE_URL"
ENV_API_VERSION = "GEMINI_API_VERSION"

IMAGE_ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_SIZES = ("1K", "2K", "4K")
VEO_ASPECT_RATIOS = ("16:9", "9:16")
VEO_DURATIONS_S = (4, 6, 8)
VEO_RESOLUTIONS = ("720p", "1080p", "4k")
MAX_INLINE_BYTES = 20 * 1024 * 1024  # about 20 MB of inline base64 per request (contract section 1)
MAX_REDIRECTS = 5

# finishReason values that mean "refused for content" (not worth retrying the same prompt). Other reasons
# for a 200 without an image (NO_IMAGE, IMAGE_OTHER, OTHER, MAX_TOKENS, a text-only STOP) may succeed again.
SAFETY_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
    }
)

_MODEL_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
_OPERATION_RE = re.compile(r"^models/[a-z0-9][a-z0-9.\-]*/operations/[A-Za-z0-9_\-]+$")
_RETRY_DELAY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
# quotaId of a per-day (or longer) quota: waiting seconds will not help (contract section 1).
_LONG_QUOTA_RE = re.compile(r"Per(Day|Month|Year)", re.IGNORECASE)

DEFAULT_IMAGE_TIMEOUT = httpx.Timeout(connect=10.0, read=180.0, write=60.0, pool=30.0)
DEFAULT_VIDEO_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=60.0, pool=30.0)


# ---------------------------------------------------------------------------------------------------------
# Error mapping
# ---------------------------------------------------------------------------------------------------------


def parse_retry_delay(value: object) -> float | None:
    """Seconds from a google.rpc.RetryInfo ``retryDelay`` (protobuf Duration JSON such as ``"7s"``, ``"0.5s"``)."""
    if not isinstance(value, str):
        return None
    match = _RETRY_DELAY_RE.match(value)
    return float(match.group(1)) if match else None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _details_of(error: Mapping[str, Any], type_suffix: str) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and str(d.get("@type", "")).endswith(type_suffix)]


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def error_from_response(
    response: httpx.Response,
    *,
    model: str,
    api_key: str | None,
    request_id: str | None = None,
) -> ProviderError:
    """Map a non-2xx Gemini API response (``{"error": {code, message, status, details}}``) to a typed error."""
    status = response.status_code
    error = _error_body(response)
    message = str(error.get("message") or response.text[:300] or response.reason_phrase)
    rpc_status = str(error.get("status") or "")
    info_reasons = [str(d.get("reason", "")) for d in _details_of(error, "google.rpc.ErrorInfo")]
    violations = [
        v for d in _details_of(error, "google.rpc.QuotaFailure") for v in d.get("violations", []) if isinstance(v, dict)
    ]
    retry_delay = None
    for detail in _details_of(error, "google.rpc.RetryInfo"):
        retry_delay = parse_retry_delay(detail.get("retryDelay"))
    if retry_delay is None:
        retry_delay = parse_retry_after(response.headers.get("retry-after"))

    reason = f"HTTP {status}{' ' + rpc_status if rpc_status else ''}: {message}"
    if info_reasons:
        reason += f" [{', '.join(r for r in info_reasons if r)}]"
    quota_ids = [str(v.get("quotaId", "")) for v in violations if v.get("quotaId")]
    if quota_ids:
        reason += f" (quotaId={', '.join(quota_ids)})"
    reason = redact(reason, api_key)
    common: dict[str, Any] = {"provider": PROVIDER, "model": model, "request_id": request_id, "status_code": status}

    if status == 401 or (status == 400 and any(r.startswith("API_KEY_") for r in info_reasons)):
        return AuthError(reason, **common)
    if status == 403:
        return PermissionDenied(reason, **common)
    if status == 429:
        exhausted = any(
            _LONG_QUOTA_RE.search(str(v.get("quotaId", ""))) or str(v.get("quotaValue", "")) == "0" for v in violations
        )
        if exhausted:
            return QuotaExhausted(reason, provider_wide=quota_is_provider_wide(quota_ids), **common)
        return RateLimited(reason, retry_after=retry_delay, **common)
    if status == 408:
        return ProviderTimeout(reason, **common)
    if status >= 500:
        return ServerError(reason, **common)
    if 400 <= status < 500:
        return BadRequest(reason, **common)
    return ServerError(reason, retryable=False, **common)


def quota_is_provider_wide(quota_ids: list[str]) -> bool:
    """Whether an exhausted quota holds back every model of the project, not only the one called.

    Gemini names each quota in ``QuotaFailure.violations[].quotaId``: per-model quotas say so
    (``GenerateRequestsPerDayPerProjectPerModel``, ``..._PerModel-FreeTier``); a quota without "Model" in its id is
    the project's (every model behind the key). No quota id at all (billing exhausted, an unknown shape): treated
    as provider-wide, the safe side for the other campaigns' plans.
    """
    return not quota_ids or any("model" not in q.lower() for q in quota_ids)


# google.rpc.Code of a failed long-running operation -> error class
_RPC_CODE_ERRORS: dict[int, type[ProviderError]] = {
    1: ServerError,  # CANCELLED
    2: ServerError,  # UNKNOWN
    3: BadRequest,  # INVALID_ARGUMENT
    4: ProviderTimeout,  # DEADLINE_EXCEEDED
    5: BadRequest,  # NOT_FOUND
    7: PermissionDenied,
    8: RateLimited,  # RESOURCE_EXHAUSTED
    9: BadRequest,  # FAILED_PRECONDITION
    10: ServerError,  # ABORTED
    13: ServerError,  # INTERNAL
    14: ServerError,  # UNAVAILABLE
    16: AuthError,  # UNAUTHENTICATED
}


def error_from_status(status: Mapping[str, Any], *, model: str, api_key: str | None, request_id: str) -> ProviderError:
    """Map a google.rpc.Status (``{"code": 3, "message": ...}``) of a finished operation to a typed error."""
    code = status.get("code")
    message = redact(str(status.get("message") or "operation failed"), api_key)
    cls = _RPC_CODE_ERRORS.get(code, ProviderError) if isinstance(code, int) else ProviderError
    return cls(f"operation failed (rpc code {code}): {message}", provider=PROVIDER, model=model, request_id=request_id)


# ---------------------------------------------------------------------------------------------------------
# Shared transport
# ---------------------------------------------------------------------------------------------------------


def _obj(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty dict (response fields are untrusted)."""
    return value if isinstance(value, dict) else {}


def _b64decode(data: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (servers and the SDK use both; contract section 7)."""
    cleaned = data.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    return base64.b64decode(cleaned, validate=True)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_model(model: str) -> str:
    model = model.removeprefix("models/")
    if not _MODEL_RE.match(model):
        raise ValueError(f"invalid model id {model!r}")
    return model


class _GoogleClient(HttpProviderClient):
    """The key header for the base origin only (redirects and file URIs elsewhere get none)."""

    provider = PROVIDER
    logger = log

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        timeout: httpx.Timeout | float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise AuthError("no API key given", provider=PROVIDER, model="-")
        if not re.fullmatch(r"v[0-9a-z]+", api_version):
            raise ValueError(f"invalid api_version {api_version!r}")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        super().__init__(timeout=timeout, trusted_urls=(self.base_url,), transport=transport)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Self:
        """Build from ``GEMINI_API_KEY``, ``GEMINI_BASE_URL`` and ``GEMINI_API_VERSION`` (the latter two optional)."""
        settings = {"base_url": (ENV_BASE_URL, DEFAULT_BASE_URL), "api_version": (ENV_API_VERSION, DEFAULT_API_VERSION)}
        return cls(cls._key_from_env(env, ENV_API_KEY, kwargs, settings), **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_version={self.api_version!r})"

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{self.api_version}/{path}"

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def _send(
        self,
        method: str,
        url: str,
        *,
        model: str,
        body: dict[str, Any] | None = None,
        request_id: str | None = None,
        billable: bool = False,
    ) -> httpx.Response:
        headers = {API_KEY_HEADER: self._api_key} if self._is_trusted(url) else {}
        return self._request(
            method, url, model=model, headers=headers, request_id=request_id, json=body, billable=billable
        )

    def _json(self, response: httpx.Response, *, model: str, request_id: str | None = None) -> dict[str, Any]:
        if response.status_code != 200:
            raise error_from_response(response, model=model, api_key=self._api_key, request_id=request_id)
        payload = self._parse_json(response, model=model, request_id=request_id)
        if not isinstance(payload, dict):
            raise ServerError(
                "HTTP 200 with a JSON body that is not an object", provider=PROVIDER, model=model, status_code=200
            )
        return payload


# ---------------------------------------------------------------------------------------------------------
# Gemini image (Nano Banana / Nano Banana Pro)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageResult:
    """The image a generateContent call returned (its last non-thought image part)."""

    data: bytes  # the image file as returned (PNG for the current image models; see mime_type)
    mime_type: str
    width: int
    height: int
    model: str  # the model asked for
    model_version: str | None  # ``modelVersion`` of the response
    request_id: str | None  # ``responseId`` of the response (the contract names no request-id header)
    finish_reason: str | None
    usage: dict[str, Any] = field(default_factory=dict)  # ``usageMetadata`` as sent
    text: str = ""  # non-thought text parts, joined


def _count(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def usage_counts(usage: Mapping[str, Any]) -> dict[str, float]:
    """``usageMetadata`` as the token counts the price is made of (contract section 1).

    ``input_tokens`` = ``promptTokenCount`` (text and image inputs alike: one input price); the candidates' tokens are
    split by ``candidatesTokensDetails`` into ``output_image_tokens`` and ``output_text_tokens`` (the rest);
    ``thoughts_tokens`` = ``thoughtsTokenCount`` (priced as text/thinking). Without the modality details the
    candidates' tokens stay ``unsplit_output_tokens`` (no single price applies). Missing fields are left out.
    """
    out: dict[str, float] = {}
    prompt = _count(usage.get("promptTokenCount"))
    if prompt is not None:
        out["input_tokens"] = prompt
    candidates = _count(usage.get("candidatesTokenCount"))
    details = [d for d in usage.get("candidatesTokensDetails") or [] if isinstance(d, dict)]
    if candidates is not None:
        if details:
            image = sum(_count(d.get("tokenCount")) or 0.0 for d in details if d.get("modality") == "IMAGE")
            out["output_image_tokens"] = image
            out["output_text_tokens"] = max(0.0, candidates - image)
        else:
            out["unsplit_output_tokens"] = candidates
    thoughts = _count(usage.get("thoughtsTokenCount"))
    if thoughts is not None:
        out["thoughts_tokens"] = thoughts
    return out


def _inline_data(part: Mapping[str, Any]) -> Mapping[str, Any] | None:
    blob = part.get("inlineData", part.get("inline_data"))
    return blob if isinstance(blob, dict) else None


def _blob_mime(blob: Mapping[str, Any]) -> str:
    return str(blob.get("mimeType", blob.get("mime_type", "")))


class GeminiImageClient(_GoogleClient):
    """Gemini image models over ``models/{model}:generateContent``."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        timeout: httpx.Timeout | float = DEFAULT_IMAGE_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(api_key, base_url=base_url, api_version=api_version, timeout=timeout, transport=transport)

    def generate(
        self,
        prompt: str,
        *,
        model: str,
        aspect_ratio: str | None,
        image_size: str | None,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> ImageResult:
        """Text to image. ``aspect_ratio``/``image_size`` None leaves them out (defaults: 1:1, 1K)."""
        if not prompt.strip():
            raise ValueError("prompt is empty")
        parts: list[dict[str, Any]] = [{"text": prompt}]
        return self._generate_content(model, parts, aspect_ratio, image_size, seed, temperature)

    def edit(
        self,
        prompt: str,
        *,
        model: str,
        image_png: bytes,
        mask_png: bytes | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> ImageResult:
        """Instruction-driven edit of ``image_png``. ``aspect_ratio`` None follows the input image.

        Gemini has no mask parameter (contract section 1): a mask goes in as a second image part after a text
        instruction saying what it means; how faithfully the model honours it is unverified.
        """
        if not prompt.strip():
            raise ValueError("prompt is empty")
        parts: list[dict[str, Any]] = [
            {"text": prompt},
            {"inlineData": {"mimeType": "image/png", "data": _b64encode(image_png)}},
        ]
        if mask_png is not None:
            parts.append(
                {
                    "text": "The next image is a mask for the image above: change only the areas that are white "
                    "in the mask and keep every black area exactly as it is."
                }
            )
            parts.append({"inlineData": {"mimeType": "image/png", "data": _b64encode(mask_png)}})
        return self._generate_content(model, parts, aspect_ratio, image_size, seed, temperature)

    def _generate_content(
        self,
        model: str,
        parts: list[dict[str, Any]],
        aspect_ratio: str | None,
        image_size: str | None,
        seed: int | None,
        temperature: float | None,
    ) -> ImageResult:
        model = _check_model(model)
        if aspect_ratio is not None and aspect_ratio not in IMAGE_ASPECT_RATIOS:
            raise ValueError(f"aspect_ratio must be one of {IMAGE_ASPECT_RATIOS}, got {aspect_ratio!r}")
        if image_size is not None and image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size!r}")
        inline = sum(len(p["inlineData"]["data"]) for p in parts if "inlineData" in p)
        if inline > MAX_INLINE_BYTES:
            raise ValueError(f"inline images total {inline} base64 bytes, above the ~20 MB request limit")
        image_config: dict[str, str] = {}
        if aspect_ratio is not None:
            image_config["aspectRatio"] = aspect_ratio
        if image_size is not None:
            image_config["imageSize"] = image_size
        config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
        if image_config:
            config["imageConfig"] = image_config
        if seed is not None:
            config["seed"] = seed
        if temperature is not None:
            config["temperature"] = temperature
        body = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
        # billable: its 2xx is reported (receipts) before a byte of it is parsed
        response = self._send(
            "POST", self._url(f"models/{model}:generateContent"), model=model, body=body, billable=True
        )
        return self._parse_image_response(self._json(response, model=model), model=model)

    def _parse_image_response(self, payload: dict[str, Any], *, model: str) -> ImageResult:
        request_id = payload.get("responseId") if isinstance(payload.get("responseId"), str) else None
        usage = _obj(payload.get("usageMetadata"))
        counts = usage_counts(usage)
        if counts:  # what the answer says it used, blocked or not (a blocked image may carry its tokens)
            receipts.usage_reported(
                receipts.Usage(PROVIDER, model, counts, source="usageMetadata", request_id=request_id)
            )
        feedback = _obj(payload.get("promptFeedback"))
        candidates = payload.get("candidates") if isinstance(payload.get("candidates"), list) else []
        common: dict[str, Any] = {"provider": PROVIDER, "model": model, "request_id": request_id, "status_code": 200}

        if not candidates:
            block = feedback.get("blockReason")
            if block:
                detail = redact(str(feedback.get("blockReasonMessage") or ""), self._api_key)
                raise ContentBlocked(
                    f"prompt blocked ({block}){': ' + detail if detail else ''}",
                    block_reason=str(block),
                    retryable=False,
                    **common,
                )
            raise ContentBlocked("HTTP 200 without candidates", block_reason="NO_CANDIDATES", retryable=True, **common)

        candidate = _obj(candidates[0])
        finish = candidate.get("finishReason")
        content = _obj(candidate.get("content"))
        parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
        images = [
            p for p in parts if not p.get("thought") and (b := _inline_data(p)) and _blob_mime(b).startswith("image/")
        ]
        text = "".join(str(p["text"]) for p in parts if not p.get("thought") and isinstance(p.get("text"), str))
        if not images:
            said = candidate.get("finishMessage") or text
            said = redact(str(said)[:200], self._api_key) if said else ""
            raise ContentBlocked(
                f"HTTP 200 without an image (finishReason={finish}){': ' + said if said else ''}",
                block_reason=str(finish or "NO_IMAGE_PART"),
                retryable=finish not in SAFETY_FINISH_REASONS,
                **common,
            )
        blob = _inline_data(images[-1]) or {}
        try:
            data = _b64decode(str(blob.get("data", "")))
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
        except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
            raise ServerError("image part is not a decodable image", retryable=False, **common) from exc
        return ImageResult(
            data=data,
            mime_type=_blob_mime(blob),
            width=width,
            height=height,
            model=model,
            model_version=payload.get("modelVersion") if isinstance(payload.get("modelVersion"), str) else None,
            request_id=request_id,
            finish_reason=str(finish) if finish else None,
            usage=dict(usage),
            text=text,
        )


# ---------------------------------------------------------------------------------------------------------
# Veo
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VeoOperation:
    """A Veo long-running operation as last polled. A finished one has ``video_uri`` or ``video_bytes``."""

    name: str
    done: bool
    video_uri: str | None = None
    video_bytes: bytes | None = None
    mime_type: str | None = None

    @property
    def model(self) -> str:
        return model_of_operation(self.name)


def model_of_operation(name: str) -> str:
    """``models/veo-3.1-generate-preview/operations/abc`` -> ``veo-3.1-generate-preview``."""
    parts = name.split("/")
    return parts[1] if len(parts) >= 4 and parts[0] == "models" else "veo"


class VeoClient(_GoogleClient):
    """Veo through the Gemini API: submit, poll, wait, download."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        timeout: httpx.Timeout | float = DEFAULT_VIDEO_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(api_key, base_url=base_url, api_version=api_version, timeout=timeout, transport=transport)

    def start(
        self,
        prompt: str,
        *,
        model: str,
        image_png: bytes | None = None,
        duration_s: int = 8,
        aspect_ratio: str = "16:9",
        resolution: str | None = None,
        negative_prompt: str | None = None,
        last_frame_png: bytes | None = None,
    ) -> str:
        """Submit a job (``:predictLongRunning``) and return the operation name.

        No seed and no audio switch: the Gemini API rejects them for Veo (contract section 2).
        """
        model = _check_model(model)
        if aspect_ratio not in VEO_ASPECT_RATIOS:
            raise ValueError(f"aspect_ratio must be one of {VEO_ASPECT_RATIOS}, got {aspect_ratio!r}")
        if duration_s not in VEO_DURATIONS_S:
            raise ValueError(f"duration_s must be one of {VEO_DURATIONS_S}, got {duration_s!r}")
        if resolution is not None and resolution not in VEO_RESOLUTIONS:
            raise ValueError(f"resolution must be one of {VEO_RESOLUTIONS}, got {resolution!r}")
        if resolution in ("1080p", "4k") and duration_s != 8:
            raise ValueError(f"{resolution} requires duration_s=8")
        instance: dict[str, Any] = {"prompt": prompt}
        if image_png is not None:
            instance["image"] = {"bytesBase64Encoded": _b64encode(image_png), "mimeType": "image/png"}
        if last_frame_png is not None:
            instance["lastFrame"] = {"bytesBase64Encoded": _b64encode(last_frame_png), "mimeType": "image/png"}
        parameters: dict[str, Any] = {"aspectRatio": aspect_ratio, "durationSeconds": duration_s}
        if resolution is not None:
            parameters["resolution"] = resolution
        if negative_prompt:
            parameters["negativePrompt"] = negative_prompt
        body = {"instances": [instance], "parameters": parameters}
        response = self._send("POST", self._url(f"models/{model}:predictLongRunning"), model=model, body=body)
        payload = self._json(response, model=model)
        name = payload.get("name")
        if not isinstance(name, str) or not _OPERATION_RE.match(name):
            raise ServerError("submit answered without a valid operation name", provider=PROVIDER, model=model)
        log.info("veo job submitted: %s", name)
        receipts.job_submitted(PROVIDER, model, name)  # kept under the call's key: a later attempt waits on it
        return name

    def _fetch_operation(self, operation_name: str) -> dict[str, Any]:
        if not _OPERATION_RE.match(operation_name):
            raise ValueError(f"invalid operation name {operation_name!r}")
        model = model_of_operation(operation_name)
        response = self._send("GET", self._url(operation_name), model=model, request_id=operation_name)
        return self._json(response, model=model, request_id=operation_name)

    def _operation_from_json(self, operation_name: str, payload: dict[str, Any]) -> VeoOperation:
        model = model_of_operation(operation_name)
        if not payload.get("done"):
            return VeoOperation(name=operation_name, done=False)
        result_body = _obj(_obj(payload.get("response")).get("generateVideoResponse"))
        filtered_count = result_body.get("raiMediaFilteredCount") or 0
        filtered_out = isinstance(filtered_count, int | float) and filtered_count > 0
        # the job finished: accounted before its result is read. A filtered video is not charged (contract
        # section 2: "You have not been charged"); a finished or failed-after-start job may be.
        receipts.answered(
            receipts.Receipt(
                provider=PROVIDER,
                model=model,
                what="operation done",
                billed=not filtered_out,
                request_id=operation_name,
                reason="filtered by responsible-AI checks (not charged)" if filtered_out else "",
            )
        )
        status = payload.get("error")
        if isinstance(status, dict):
            raise error_from_status(status, model=model, api_key=self._api_key, request_id=operation_name)
        result = _obj(_obj(payload.get("response")).get("generateVideoResponse"))
        common: dict[str, Any] = {"provider": PROVIDER, "model": model, "request_id": operation_name}
        filtered = result.get("raiMediaFilteredCount") or 0
        if isinstance(filtered, int | float) and filtered > 0:
            reasons = result.get("raiMediaFilteredReasons") or []
            said = redact("; ".join(str(r) for r in reasons)[:300], self._api_key)
            raise ContentBlocked(
                f"{int(filtered)} video(s) filtered by responsible-AI checks{': ' + said if said else ''}",
                block_reason="RAI_MEDIA_FILTERED",
                **common,
            )
        samples = [s for s in result.get("generatedSamples") or [] if isinstance(s, dict)]
        video = samples[0].get("video") if samples and isinstance(samples[0].get("video"), dict) else None
        if video is None:
            raise ServerError("operation finished without a video", retryable=False, **common)
        if isinstance(video.get("uri"), str):
            receipts.job_ready(PROVIDER, model, operation_name)  # a failed download can fetch it again, unpaid
            return VeoOperation(name=operation_name, done=True, video_uri=video["uri"], mime_type="video/mp4")
        if isinstance(video.get("encodedVideo"), str):
            try:
                data = _b64decode(video["encodedVideo"])
            except (binascii.Error, ValueError) as exc:
                raise ServerError("encodedVideo is not base64", retryable=False, **common) from exc
            receipts.job_ready(PROVIDER, model, operation_name)
            return VeoOperation(
                name=operation_name, done=True, video_bytes=data, mime_type=str(video.get("encoding") or "video/mp4")
            )
        raise ServerError("operation finished with a video entry without uri or bytes", retryable=False, **common)

    def poll(self, operation_name: str) -> VeoOperation:
        """One GET of the operation. Raises the typed error if it finished filtered or failed."""
        return self._operation_from_json(operation_name, self._fetch_operation(operation_name))

    def wait(
        self,
        operation_name: str,
        *,
        poll_interval_s: float = 10.0,
        timeout_s: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> VeoOperation:
        """Poll until done. Retryable HTTP errors while polling (429, 5xx, timeouts) only delay the next poll.

        Raises :class:`ProviderTimeout` (``retryable=False``: the job may still finish, wait again with the same
        name rather than resubmit) when ``timeout_s`` would be exceeded.
        """

        def read(payload: dict[str, Any]) -> VeoOperation | None:
            operation = self._operation_from_json(operation_name, payload)
            return operation if operation.done else None

        return poll_until_done(
            lambda: self._fetch_operation(operation_name),
            read,
            what=operation_name,
            interval_s=poll_interval_s,
            timeout_s=timeout_s,
            timed_out=lambda polls: ProviderTimeout(
                f"operation not done after {polls} poll(s) within {timeout_s:g}s",
                provider=PROVIDER,
                model=model_of_operation(operation_name),
                request_id=operation_name,
                retryable=False,
            ),
            sleep=sleep,
            clock=clock,
        )

    def download(self, uri: str, *, model: str = "veo") -> bytes:
        """GET a generated file (``.../files/{id}:download?alt=media``), following redirects.

        The key header is sent only to the base URL's origin, so a redirect to a storage host gets none.
        """
        url = uri
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send("GET", url, model=model)
            if response.is_redirect:
                location = response.headers.get("location")
                if not location:
                    raise ServerError("redirect without a location", provider=PROVIDER, model=model)
                url = urljoin(url, location)
                continue
            if response.status_code != 200:
                raise error_from_response(response, model=model, api_key=self._api_key)
            if not response.content:
                raise ServerError("download returned an empty body", provider=PROVIDER, model=model)
            return response.content
        raise ServerError(f"more than {MAX_REDIRECTS} redirects", provider=PROVIDER, model=model, retryable=False)

    def video_bytes(self, operation: VeoOperation) -> bytes:
        """The finished operation's video: inline bytes or a download of its URI.

        Veo is billed per second generated and its operation reports no usage (contract section 2), so the seconds
        are read from the returned file and reported as the call's usage (``receipts.usage_reported``).
        """
        if operation.video_bytes is not None:
            data = operation.video_bytes
        elif operation.video_uri is None:
            raise ValueError(f"operation {operation.name} has no video")
        else:
            data = self.download(operation.video_uri, model=operation.model)
        seconds = video_seconds(data)
        if seconds is not None:
            receipts.usage_reported(
                receipts.Usage(
                    PROVIDER,
                    operation.model,
                    {"video_seconds": seconds},
                    source="length of the returned video (the operation reports no usage)",
                    request_id=operation.name,
                )
            )
        return data


def video_seconds(data: bytes) -> float | None:
    """The length in seconds of an MP4 (its video stream's frames over their rate), or None if it cannot be read."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            if rate and frames:
                return round(float(frames / rate), 3)
            if container.duration:
                return round(container.duration / 1_000_000, 3)
    except (av.error.FFmpegError, IndexError, ValueError):
        return None
    return None
