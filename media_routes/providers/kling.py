"""httpx adapter for the Kling AI official API: image-to-video (v1 task API) with AK/SK JWT auth.

Contract: shared/reference/provider-contracts.md section 3 (and section 6 for the stub).

- Auth: ``Authorization: Bearer <jwt>``; the JWT is HS256 over ``{"iss": access_key, "exp": now+1800,
  "nbf": now-5}`` signed with the secret key (PyJWT). The token is cached and re-signed when less than
  ``refresh_margin_s`` of its life remains; the clock is injectable so tests can prove it.
- The token goes only to the origin of ``base_url``. Video URLs are public CDN links (contract), so
  :meth:`KlingClient.download` never sends it, whatever the host.
- Every failure becomes a typed :mod:`media_routes.providers.errors` error, chosen from Kling's own
  ``code`` (HTTP status only as a fallback), carrying Kling's ``request_id`` and, when there is one, the
  task id (in the message and as ``error.task_id``). The secret key and the JWT never appear in errors
  or log lines. Adapters make one attempt per call: wrap calls in
  :func:`media_routes.providers.retry.call_with_retries` for the retry policy.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import jwt
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

PROVIDER = "kling"
DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
ENV_ACCESS_KEY = "KLING_ACCESS_KEY"
ENV_SECRET_KEY = "KLING_SECRET_KEY"
ENV_BASE_URL = "KLING_BASE_URL"

IMAGE2VIDEO_PATH = "/v1/videos/image2video"
TOKEN_TTL_S = 1800  # exp = now + 1800 (contract section 3)
TOKEN_NBF_SKEW_S = 5  # nbf = now - 5
DEFAULT_REFRESH_MARGIN_S = 300.0  # re-sign when less than this is left before exp

MODEL_NAMES = (
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
)
DURATIONS = ("5", "10")
MODES = ("std", "pro")
MAX_PROMPT_CHARS = 2500
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_IMAGE_SIDE = 300
MAX_IMAGE_RATIO = 2.5
ASPECT_RATIO_TOLERANCE = 0.02  # relative; aspect_ratio is only checked against the image, never sent

TERMINAL_STATUSES = ("succeed", "failed")
TASK_STATUSES = ("submitted", "processing", *TERMINAL_STATUSES)

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=30.0)
DEFAULT_DOWNLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)

_MODEL_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
_TASK_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")

# Kling's ``code`` -> (error class, extra keyword arguments). Contract section 3, error table.
_CODE_ERRORS: dict[int, tuple[type[ProviderError], dict[str, Any]]] = {
    1000: (AuthError, {}),  # authentication failed
    1001: (AuthError, {}),  # authorization header empty
    1002: (AuthError, {}),  # authorization invalid
    1003: (AuthError, {}),  # token not yet valid (nbf)
    1004: (AuthError, {}),  # token expired
    1100: (PermissionDenied, {}),  # account exception
    1101: (QuotaExhausted, {}),  # arrears (billing)
    1102: (QuotaExhausted, {}),  # resource pack depleted
    1103: (PermissionDenied, {}),  # unauthorized resource
    1200: (BadRequest, {}),  # bad parameters
    1201: (BadRequest, {}),  # bad parameters
    1202: (BadRequest, {}),  # bad method
    1203: (BadRequest, {}),  # model not found
    1300: (BadRequest, {}),  # platform policy (not the content check; see docs/providers-kling.md)
    1301: (ContentBlocked, {"block_reason": "KLING_1301_CONTENT_SECURITY"}),
    1302: (RateLimited, {}),  # rate limit
    1303: (RateLimited, {}),  # concurrency over the resource-pack limit
    1304: (PermissionDenied, {}),  # IP whitelist
    5000: (ServerError, {}),
    5001: (ServerError, {}),
    5002: (ServerError, {}),
}

# A failed task only has ``task_status_msg`` (free text); classify it by keywords.
_FAILED_CONTENT_RE = re.compile(r"(?i)risk|safety|secur|sensitive|violat|inappropriate|prohibit|content polic|nsfw")
_FAILED_QUOTA_RE = re.compile(r"(?i)balance|arrear|resource pack|insufficient|quota")
_FAILED_TIMEOUT_RE = re.compile(r"(?i)time[d ]?\s?out")


def redact_token(text: str, *secrets: str | None) -> str:
    """:func:`redact` (which covers JWTs and bearer credentials) with Kling's access and secret keys."""
    return redact(text, *secrets)


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _with_task(error: ProviderError, task_id: str | None) -> ProviderError:
    error.task_id = task_id  # type: ignore[attr-defined]  # kept through pickling (errors copy __dict__)
    return error


def _parse_retry_after(value: str | None) -> float | None:
    """Delta-seconds ``Retry-After`` if a server sends one (Kling documents none)."""
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def error_from_code(
    code: int | None,
    message: str,
    *,
    status_code: int,
    model: str,
    request_id: str | None,
    task_id: str | None = None,
    retry_after: float | None = None,
    secrets: tuple[str | None, ...] = (),
) -> ProviderError:
    """Map Kling's ``code`` (or, for an unknown code, the HTTP status) to a typed error."""
    where = f"task {task_id}: " if task_id else ""
    reason = redact_token(f"{where}HTTP {status_code} code {code}: {message}", *secrets)
    common: dict[str, Any] = {"provider": PROVIDER, "model": model, "request_id": request_id}
    common["status_code"] = status_code
    if isinstance(code, int) and code in _CODE_ERRORS:
        cls, extra = _CODE_ERRORS[code]
    elif status_code == 401:
        cls, extra = AuthError, {}
    elif status_code == 403:
        cls, extra = PermissionDenied, {}
    elif status_code == 429:
        cls, extra = RateLimited, {}
    elif status_code == 408:
        cls, extra = ProviderTimeout, {}
    elif status_code >= 500:
        cls, extra = ServerError, {}
    elif 400 <= status_code < 500:
        cls, extra = BadRequest, {}
    else:  # a 2xx/3xx with a non-zero code that is not in the table
        cls, extra = ServerError, {"retryable": False}
    if cls is RateLimited:
        extra = {**extra, "retry_after": retry_after}
    return _with_task(cls(reason, **extra, **common), task_id)


def error_from_failed_task(
    message: str | None,
    *,
    model: str,
    request_id: str | None,
    task_id: str,
    secrets: tuple[str | None, ...] = (),
) -> ProviderError:
    """A task that ended ``failed``: classify ``task_status_msg`` (content, quota, timeout, else server)."""
    text = redact_token(message or "no task_status_msg", *secrets)
    reason = f"task {task_id} failed: {text}"
    common: dict[str, Any] = {"provider": PROVIDER, "model": model, "request_id": request_id, "status_code": 200}
    error: ProviderError
    if _FAILED_CONTENT_RE.search(text):
        error = ContentBlocked(reason, block_reason="KLING_TASK_FAILED_CONTENT", **common)
    elif _FAILED_QUOTA_RE.search(text):
        error = QuotaExhausted(reason, **common)
    elif _FAILED_TIMEOUT_RE.search(text):
        error = ProviderTimeout(reason, **common)
    else:
        # Failed tasks are free; resubmitting the same request may succeed (a new task, not another wait).
        error = ServerError(reason, **common)
    return _with_task(error, task_id)


# ---------------------------------------------------------------------------------------------------------
# Auth
# ---------------------------------------------------------------------------------------------------------


class KlingTokenSigner:
    """Signs and caches the AK/SK JWT; re-signs when less than ``refresh_margin_s`` remains before ``exp``."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        ttl_s: int = TOKEN_TTL_S,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not access_key or not access_key.strip() or not secret_key or not secret_key.strip():
            raise AuthError("access key and secret key are both required", provider=PROVIDER, model="-")
        if not 0 <= refresh_margin_s < ttl_s:
            raise ValueError("refresh_margin_s must be in [0, ttl_s)")
        self.access_key = access_key
        self._secret_key = secret_key
        self.ttl_s = ttl_s
        self.refresh_margin_s = refresh_margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._exp = 0
        self.signed = 0  # how many tokens were signed (for tests and metrics)

    def __repr__(self) -> str:
        return f"KlingTokenSigner(access_key={self.access_key!r}, ttl_s={self.ttl_s})"

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """Strings to scrub from any text: the secret key and the current token."""
        return (self._secret_key, self._token)

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._exp - self.refresh_margin_s:
                issued = math.floor(now)
                self._exp = issued + self.ttl_s
                payload = {"iss": self.access_key, "exp": self._exp, "nbf": issued - TOKEN_NBF_SKEW_S}
                self._token = jwt.encode(payload, self._secret_key, algorithm="HS256", headers={"typ": "JWT"})
                self.signed += 1
                log.debug("signed a new Kling token (exp=%d)", self._exp)
            return self._token


# ---------------------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KlingVideo:
    id: str | None
    url: str
    duration: str | None  # seconds as Kling sends it, a string ("5")


@dataclass(frozen=True)
class KlingTask:
    """A task as last polled. ``videos`` is filled once ``status == "succeed"``."""

    task_id: str
    status: str  # submitted | processing | succeed | failed
    request_id: str | None = None
    status_msg: str | None = None
    videos: tuple[KlingVideo, ...] = ()
    final_unit_deduction: str | None = None
    external_task_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def video_url(self) -> str | None:
        return self.videos[0].url if self.videos else None


def _number(value: object) -> float | None:
    """A non-negative number sent as a number or a numeric string (Kling sends ``"1"``), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def _image_size(image_png: bytes) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(image_png)) as img:
            if img.format not in ("PNG", "JPEG"):
                raise ValueError(f"image must be PNG or JPEG, got {img.format}")
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError("image_png is not a decodable image") from exc


def _check_image(image_png: bytes, aspect_ratio: str | None) -> None:
    if len(image_png) > MAX_IMAGE_BYTES:
        raise ValueError(f"image is {len(image_png)} bytes, above Kling's 10 MB limit")
    width, height = _image_size(image_png)
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValueError(f"image is {width}x{height}; Kling needs width and height >= {MIN_IMAGE_SIDE} px")
    ratio = width / height
    if not 1 / MAX_IMAGE_RATIO <= ratio <= MAX_IMAGE_RATIO:
        raise ValueError(f"image aspect ratio {ratio:.3f} is outside 1:2.5 to 2.5:1")
    if aspect_ratio is not None:
        try:
            a, b = (float(x) for x in aspect_ratio.split(":"))
            wanted = a / b
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"invalid aspect_ratio {aspect_ratio!r}") from exc
        if abs(ratio - wanted) / wanted > ASPECT_RATIO_TOLERANCE:
            raise ValueError(
                f"image is {width}x{height} but aspect_ratio {aspect_ratio} was asked for: Kling image-to-video "
                "takes no aspect_ratio (the video follows the image), so crop the image first"
            )


class KlingClient(HttpProviderClient):
    """Kling AI image-to-video: submit, poll, wait, download. One ``httpx.Client``; ``close()`` or ``with``."""

    provider = PROVIDER
    logger = log

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        download_timeout: httpx.Timeout | float = DEFAULT_DOWNLOAD_TIMEOUT,
        clock: Callable[[], float] = time.time,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.signer = KlingTokenSigner(access_key, secret_key, clock=clock, refresh_margin_s=refresh_margin_s)
        self.base_url = base_url.rstrip("/")
        self._download_timeout = download_timeout
        # API calls are never redirected (the token must not follow one); downloads opt in per request
        super().__init__(timeout=timeout, trusted_urls=(self.base_url,), transport=transport)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Self:
        """Build from ``KLING_ACCESS_KEY``, ``KLING_SECRET_KEY`` and the optional ``KLING_BASE_URL``."""
        env = os.environ if env is None else env
        access_key = env.get(ENV_ACCESS_KEY, "").strip()
        secret_key = env.get(ENV_SECRET_KEY, "").strip()
        missing = [name for name, value in ((ENV_ACCESS_KEY, access_key), (ENV_SECRET_KEY, secret_key)) if not value]
        if missing:
            raise AuthError(f"{' and '.join(missing)} not set", provider=PROVIDER, model="-")
        kwargs.setdefault("base_url", env.get(ENV_BASE_URL) or DEFAULT_BASE_URL)
        return cls(access_key, secret_key, **kwargs)

    def __repr__(self) -> str:
        return f"KlingClient(base_url={self.base_url!r}, access_key={self.signer.access_key!r})"

    # -- transport ---------------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return redact_token(text, *self.signer.secrets)

    def _send(
        self,
        method: str,
        url: str,
        *,
        model: str,
        body: dict[str, Any] | None = None,
        task_id: str | None = None,
        authorize: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        if authorize and self._is_trusted(url):
            headers["authorization"] = f"Bearer {self.signer.token()}"
        where = f"task {task_id}: " if task_id else ""
        try:
            return self._request(method, url, model=model, headers=headers, where=where, json=body, **kwargs)
        except ProviderError as err:  # a transport failure: name the task on it too
            _with_task(err, task_id)
            raise

    def _json(self, response: httpx.Response, *, model: str, task_id: str | None = None) -> dict[str, Any]:
        """The body of a Kling API answer with ``code == 0``; anything else raises the typed error."""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        body = _obj(payload)
        request_id = _str_or_none(body.get("request_id"))
        code = body.get("code")
        if response.status_code == 200 and payload is not None and code == 0:
            return body
        if response.status_code == 200 and (payload is None or not isinstance(code, int)):
            where = f"task {task_id}: " if task_id else ""
            raise _with_task(
                ServerError(
                    f"{where}HTTP 200 with a body that is not a Kling JSON answer",
                    provider=PROVIDER,
                    model=model,
                    request_id=request_id,
                    status_code=200,
                ),
                task_id,
            )
        message = str(body.get("message") or response.text[:300] or response.reason_phrase)
        raise error_from_code(
            code if isinstance(code, int) else None,
            message,
            status_code=response.status_code,
            model=model,
            request_id=request_id,
            task_id=task_id,
            retry_after=_parse_retry_after(response.headers.get("retry-after")),
            secrets=self.signer.secrets,
        )

    # -- image to video ----------------------------------------------------------------------------------

    def image_to_video(
        self,
        image_png: bytes,
        *,
        prompt: str,
        model_name: str,
        duration: str = "5",
        mode: str = "std",
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        cfg_scale: float | None = None,
        external_task_id: str | None = None,
    ) -> str:
        """``POST /v1/videos/image2video``; returns the task id.

        ``image_png`` is sent as raw base64 (no ``data:`` prefix). Kling image-to-video has no aspect_ratio
        field (the video follows the image): ``aspect_ratio`` is only checked against the image and never sent.
        ``cfg_scale`` (0 to 1) is refused for the v2.x models, which do not support it.
        """
        if not _MODEL_RE.match(model_name):
            raise ValueError(f"invalid model_name {model_name!r}")
        if duration not in DURATIONS or not isinstance(duration, str):
            raise ValueError(f"duration must be the string '5' or '10', got {duration!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not prompt or len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"prompt must be 1 to {MAX_PROMPT_CHARS} characters")
        if negative_prompt is not None and len(negative_prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"negative_prompt must be at most {MAX_PROMPT_CHARS} characters")
        if cfg_scale is not None:
            if not 0.0 <= cfg_scale <= 1.0:
                raise ValueError(f"cfg_scale must be in [0, 1], got {cfg_scale}")
            if model_name.startswith("kling-v2"):
                raise ValueError(f"{model_name} does not support cfg_scale")
        _check_image(image_png, aspect_ratio)

        body: dict[str, Any] = {
            "model_name": model_name,
            "image": base64.b64encode(image_png).decode("ascii"),
            "prompt": prompt,
            "mode": mode,
            "duration": duration,
        }
        if negative_prompt:
            body["negative_prompt"] = negative_prompt
        if cfg_scale is not None:
            body["cfg_scale"] = cfg_scale
        if external_task_id is not None:
            body["external_task_id"] = external_task_id
        response = self._send("POST", f"{self.base_url}{IMAGE2VIDEO_PATH}", model=model_name, body=body)
        payload = self._json(response, model=model_name)
        data = _obj(payload.get("data"))
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not _TASK_ID_RE.match(task_id):
            raise ServerError(
                "create answered without a valid task_id",
                provider=PROVIDER,
                model=model_name,
                request_id=_str_or_none(payload.get("request_id")),
                status_code=200,
            )
        log.info("kling task submitted: %s (request_id=%s)", task_id, payload.get("request_id"))
        receipts.job_submitted(PROVIDER, model_name, task_id)  # kept under the call's key: a later attempt waits on it
        return task_id

    def _fetch_task(self, task_id: str, model: str) -> dict[str, Any]:
        if not _TASK_ID_RE.match(task_id):
            raise ValueError(f"invalid task id {task_id!r}")
        response = self._send("GET", f"{self.base_url}{IMAGE2VIDEO_PATH}/{task_id}", model=model, task_id=task_id)
        return self._json(response, model=model, task_id=task_id)

    def _task_from_json(self, task_id: str, payload: dict[str, Any], model: str) -> KlingTask:
        request_id = _str_or_none(payload.get("request_id"))
        data = _obj(payload.get("data"))
        status = data.get("task_status")
        common: dict[str, Any] = {"provider": PROVIDER, "model": model, "request_id": request_id, "status_code": 200}
        if status not in TASK_STATUSES:
            raise _with_task(ServerError(f"task {task_id}: unknown task_status {status!r}", **common), task_id)
        status_msg = _str_or_none(data.get("task_status_msg"))
        if status in TERMINAL_STATUSES:  # accounted before the result is read; failed tasks are free
            receipts.answered(
                receipts.Receipt(
                    provider=PROVIDER,
                    model=model,
                    what=f"task {status}",
                    billed=status == "succeed",
                    request_id=task_id,
                    reason="" if status == "succeed" else "failed tasks are not charged",
                )
            )
        if status == "failed":
            raise error_from_failed_task(
                status_msg, model=model, request_id=request_id, task_id=task_id, secrets=self.signer.secrets
            )
        videos: tuple[KlingVideo, ...] = ()
        if status == "succeed":
            entries = _obj(data.get("task_result")).get("videos")
            videos = tuple(
                KlingVideo(id=_str_or_none(v.get("id")), url=v["url"], duration=_str_or_none(v.get("duration")))
                for v in (entries if isinstance(entries, list) else [])
                if isinstance(v, dict)
                and isinstance(v.get("url"), str)
                and v["url"].startswith(("http://", "https://"))
            )
            if not videos:
                raise _with_task(
                    ServerError(f"task {task_id}: succeeded without a video URL", retryable=False, **common), task_id
                )
            receipts.job_ready(PROVIDER, model, task_id)  # a failed download can fetch it again, unpaid
        deduction = data.get("final_unit_deduction")
        if status == "succeed":  # what the task cost in Kling's prepaid units (contract section 3)
            counts = {"units_deducted": _number(deduction), "video_seconds": _number(videos[0].duration)}
            reported = {k: v for k, v in counts.items() if v is not None}
            if reported:
                receipts.usage_reported(
                    receipts.Usage(PROVIDER, model, reported, source="final_unit_deduction", request_id=task_id)
                )
        return KlingTask(
            task_id=task_id,
            status=status,
            request_id=request_id,
            status_msg=status_msg,
            videos=videos,
            final_unit_deduction=str(deduction) if deduction is not None else None,
            external_task_id=_str_or_none(_obj(data.get("task_info")).get("external_task_id")),
        )

    def poll(self, task_id: str, *, model: str = "kling") -> KlingTask:
        """One ``GET /v1/videos/image2video/{task_id}``. Raises the typed error if the task ended ``failed``."""
        return self._task_from_json(task_id, self._fetch_task(task_id, model), model)

    def wait(
        self,
        task_id: str,
        *,
        poll_interval_s: float = 10.0,
        timeout_s: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        model: str = "kling",
    ) -> KlingTask:
        """Poll until ``succeed`` (returned) or ``failed`` (raised). Retryable poll errors only delay the next poll.

        Raises :class:`ProviderTimeout` (``retryable=False``: the task may still finish; wait again on the same
        id rather than resubmit) when ``timeout_s`` would be exceeded.
        """

        def read(payload: dict[str, Any]) -> KlingTask | None:
            task = self._task_from_json(task_id, payload, model)
            return task if task.done else None

        return poll_until_done(
            lambda: self._fetch_task(task_id, model),
            read,
            what=task_id,
            interval_s=poll_interval_s,
            timeout_s=timeout_s,
            timed_out=lambda polls: _with_task(
                ProviderTimeout(
                    f"task {task_id} not done after {polls} poll(s) within {timeout_s:g}s",
                    provider=PROVIDER,
                    model=model,
                    request_id=None,
                    retryable=False,
                ),
                task_id,
            ),
            sleep=sleep,
            clock=clock,
        )

    def download(self, url: str, *, model: str = "kling", task_id: str | None = None) -> bytes:
        """GET a result video. The CDN links are public (contract), so no Authorization header is ever sent."""
        if not url.startswith(("http://", "https://")):
            raise ValueError("download URL must be http(s)")
        response = self._send(
            "GET",
            url,
            model=model,
            task_id=task_id,
            authorize=False,
            follow_redirects=True,
            timeout=self._download_timeout,
        )
        if response.status_code != 200:
            where = f"task {task_id}: " if task_id else ""
            status = response.status_code
            cls: type[ProviderError] = ServerError if status >= 500 else BadRequest
            if status == 429:
                cls = RateLimited
            raise _with_task(
                cls(
                    f"{where}download failed with HTTP {status} from {urlsplit(url).hostname}",
                    provider=PROVIDER,
                    model=model,
                    request_id=None,
                    status_code=status,
                ),
                task_id,
            )
        if not response.content:
            raise _with_task(
                ServerError("download returned an empty body", provider=PROVIDER, model=model, request_id=None), task_id
            )
        return response.content

    def video_bytes(self, task: KlingTask, *, model: str = "kling") -> bytes:
        """The first video of a succeeded task."""
        if task.video_url is None:
            raise ValueError(f"task {task.task_id} has no video")
        return self.download(task.video_url, model=model, task_id=task.task_id)
