"""httpx adapter for the fal.ai queue API and helpers for the upscale, outpaint and inpaint stages.

Contract: shared/reference/provider-contracts.md section 4 (queue protocol, errors, model inputs).

- The key goes only in the ``Authorization: Key <FAL_KEY>`` header, and only to fal's own hosts: the
  origins of ``queue_url`` and ``base_url`` (and ``fal.run`` / ``*.fal.run`` over https). Output files on
  ``*.fal.media`` (or anywhere else) are downloaded without it. The key never goes in a URL, a log line or
  an error message (provider text is passed through :func:`errors.redact` with the key and its secret part).
- ``submit`` keeps the ``status_url``, ``response_url`` and ``cancel_url`` returned at submit time and every
  later call uses exactly those: fal drops the endpoint subpath from them, so rebuilt URLs get a 405.
- Every failure becomes a typed :mod:`media_routes.providers.errors` error carrying fal's ``request_id``
  when one is known. Calls make one attempt each (``wait`` only tolerates transient poll failures): wrap
  them in :func:`media_routes.providers.retry.call_with_retries` for the retry policy.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

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
from media_routes.providers.gemini import parse_retry_after
from media_routes.providers.http import HttpProviderClient, origin_of
from media_routes.providers.poll import poll_until_done

log = logging.getLogger(__name__)

PROVIDER = "fal"
DEFAULT_QUEUE_URL = "https://queue.fal.run"
DEFAULT_BASE_URL = "https://fal.run"
ENV_KEY = "FAL_KEY"
ENV_BASE_URL = "FAL_BASE_URL"
ENV_QUEUE_URL = "FAL_QUEUE_URL"
REQUEST_ID_HEADER = "x-fal-request-id"  # set by fal's servers on their answers (fal_client._is_ingress_error)
ERROR_TYPE_HEADER = "x-fal-error-type"
RETRYABLE_HEADERS = ("x-fal-retryable", "x-fal-needs-retry")  # the docs disagree on the name (contract section 4)

UPSCALE_MODELS = ("fal-ai/clarity-upscaler", "fal-ai/esrgan", "fal-ai/seedvr/upscale/image")
OUTPAINT_MODEL = "fal-ai/bria/expand"
INPAINT_MODEL = "fal-ai/flux-pro/v1/fill"
QUEUE_STATUSES = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
CONTENT_POLICY = "content_policy_violation"
MAX_REDIRECTS = 5

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=30.0)

_MODEL_RE = re.compile(r"^[a-z0-9][a-z0-9._\-]*(?:/[a-z0-9][a-z0-9._\-]*)+$")


# ---------------------------------------------------------------------------------------------------------
# Error mapping
# ---------------------------------------------------------------------------------------------------------


def _secrets(api_key: str | None) -> tuple[str, ...]:
    """The key and, for ``key_id:key_secret`` keys, the secret alone (either may be echoed)."""
    if not api_key:
        return ()
    secret = api_key.rsplit(":", 1)[-1]
    return (api_key, secret) if secret != api_key and len(secret) >= 8 else (api_key,)


def _detail_text(detail: object) -> str:
    if isinstance(detail, list):
        items = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p is not None) if item.get("loc") else ""
                items.append(f"{loc + ': ' if loc else ''}{item.get('msg', '')} ({item.get('type', '?')})")
            else:
                items.append(str(item))
        return "; ".join(items)
    return str(detail) if detail is not None else ""


def _retryable_hint(response: httpx.Response) -> bool | None:
    for name in RETRYABLE_HEADERS:
        value = response.headers.get(name)
        if value is not None:
            return value.strip().lower() in ("1", "true", "yes")
    return None


def error_from_response(
    response: httpx.Response,
    *,
    model: str,
    api_key: str | None,
    request_id: str | None = None,
) -> ProviderError:
    """Map a non-2xx fal answer (``{"detail": str | [...], "error_type"?}``) to a typed error."""
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    body = payload if isinstance(payload, dict) else {}
    detail = body.get("detail")
    error_type = body.get("error_type") or response.headers.get(ERROR_TYPE_HEADER)
    message = _detail_text(detail) or response.text[:300] or response.reason_phrase
    request_id = request_id or response.headers.get(REQUEST_ID_HEADER)
    reason = redact(f"HTTP {status}{' ' + str(error_type) if error_type else ''}: {message}", *_secrets(api_key))
    common: dict[str, Any] = {"provider": PROVIDER, "model": model, "request_id": request_id, "status_code": status}
    items = [d for d in detail if isinstance(d, dict)] if isinstance(detail, list) else []

    if status == 401:
        return AuthError(reason, **common)
    if status == 403:
        lowered = message.lower()
        if "locked" in lowered or "balance" in lowered:  # "User is locked. Reason: Exhausted balance."
            return QuotaExhausted(reason, **common)
        return PermissionDenied(reason, **common)
    if status == 422:
        blocked = [d for d in items if d.get("type") == CONTENT_POLICY]
        if blocked or error_type == CONTENT_POLICY:
            categories = sorted({str(c) for d in blocked for c in d.get("categories") or []})
            block_reason = CONTENT_POLICY + (f" [{', '.join(categories)}]" if categories else "")
            return ContentBlocked(reason, block_reason=block_reason, **common)
        return BadRequest(reason, **common)
    if status == 429:
        return RateLimited(reason, retry_after=parse_retry_after(response.headers.get("retry-after")), **common)
    if status == 408 or (status >= 500 and error_type and "timeout" in str(error_type)):
        return ProviderTimeout(reason, retryable=_retryable_hint(response), **common)
    if status >= 500 or status == 409:
        return ServerError(reason, retryable=_retryable_hint(response), **common)
    if 400 <= status < 500:
        return BadRequest(reason, **common)
    return ServerError(reason, retryable=False, **common)


def error_from_job(
    error: object, error_type: object, *, model: str, api_key: str | None, request_id: str
) -> ProviderError:
    """Map a finished job's ``error`` / ``error_type`` (status body of a failed request) to a typed error."""
    kind = str(error_type) if error_type else ""
    reason = redact(
        f"job failed{' (' + kind + ')' if kind else ''}: {_detail_text(error) or 'no message'}", *_secrets(api_key)
    )
    common: dict[str, Any] = {"provider": PROVIDER, "model": model, "request_id": request_id}
    if kind == CONTENT_POLICY:
        return ContentBlocked(reason, block_reason=CONTENT_POLICY, **common)
    if "timeout" in kind:
        return ProviderTimeout(reason, **common)
    if "cancel" in kind:
        return ServerError(reason, retryable=False, **common)
    if kind in ("validation_error", "bad_request"):
        return BadRequest(reason, **common)
    return ServerError(reason, **common)


# ---------------------------------------------------------------------------------------------------------
# Data types
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FalRequest:
    """A submitted request: the id and the URLs fal returned at submit time (always used as given)."""

    request_id: str
    model_id: str
    status_url: str
    response_url: str
    cancel_url: str | None = None
    queue_position: int | None = None

    def to_json(self) -> str:
        """What a later attempt needs to wait on this request again (:meth:`FalClient.resumed`)."""
        return json.dumps(
            {
                "request_id": self.request_id,
                "model_id": self.model_id,
                "status_url": self.status_url,
                "response_url": self.response_url,
                "cancel_url": self.cancel_url,
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class FalStatus:
    """One status answer: ``IN_QUEUE``, ``IN_PROGRESS`` or ``COMPLETED``."""

    status: str
    request_id: str
    queue_position: int | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status == "COMPLETED"


def _check_model(model_id: str) -> str:
    model_id = model_id.strip("/")
    if not _MODEL_RE.match(model_id):
        raise ValueError(f"invalid fal endpoint id {model_id!r} (expected owner/alias[/path])")
    return model_id


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...``: the contract allows a data URI for any ``*_url`` input."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("expected PNG bytes")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


# ---------------------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------------------


class FalQueueClient(HttpProviderClient):
    """fal.ai queue API over one ``httpx.Client``: submit, status, wait, result, cancel, download."""

    provider = PROVIDER
    logger = log

    def __init__(
        self,
        api_key: str,
        *,
        queue_url: str = DEFAULT_QUEUE_URL,
        base_url: str = DEFAULT_BASE_URL,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        poll_interval_s: float = 1.0,
        job_timeout_s: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise AuthError("no API key given", provider=PROVIDER, model="-")
        self._api_key = api_key.strip()
        self.queue_url = queue_url.rstrip("/")
        self.base_url = base_url.rstrip("/")
        self.poll_interval_s = poll_interval_s
        self.job_timeout_s = job_timeout_s
        self._sleep = sleep
        self._clock = clock
        super().__init__(timeout=timeout, trusted_urls=(self.queue_url, self.base_url), transport=transport)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Self:
        """Build from ``FAL_KEY`` and the optional ``FAL_QUEUE_URL`` and ``FAL_BASE_URL``."""
        settings = {"queue_url": (ENV_QUEUE_URL, DEFAULT_QUEUE_URL), "base_url": (ENV_BASE_URL, DEFAULT_BASE_URL)}
        return cls(cls._key_from_env(env, ENV_KEY, kwargs, settings), **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(queue_url={self.queue_url!r}, base_url={self.base_url!r})"

    # -- transport ---------------------------------------------------------------------------------------

    def is_fal_host(self, url: str) -> bool:
        """True for the configured queue/base origins and https ``fal.run`` / ``*.fal.run`` (key allowed)."""
        if self._is_trusted(url):
            return True
        scheme, host, _ = origin_of(url)
        return scheme == "https" and (host == "fal.run" or host.endswith(".fal.run"))

    def _redact(self, text: str) -> str:
        return redact(text, *_secrets(self._api_key))

    def _send(
        self,
        method: str,
        url: str,
        *,
        model: str,
        request_id: str | None = None,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"authorization": f"Key {self._api_key}"} if self.is_fal_host(url) else {}
        return self._request(method, url, model=model, headers=headers, request_id=request_id, json=body, params=params)

    def _json(self, response: httpx.Response, *, model: str, request_id: str | None) -> dict[str, Any]:
        if not 200 <= response.status_code < 300:
            raise error_from_response(response, model=model, api_key=self._api_key, request_id=request_id)
        request_id = request_id or response.headers.get(REQUEST_ID_HEADER)
        payload = self._parse_json(response, model=model, request_id=request_id)
        if not isinstance(payload, dict):
            raise ServerError("JSON body is not an object", provider=PROVIDER, model=model, request_id=request_id)
        return payload

    def _handle_url(self, value: object, name: str, *, model: str, request_id: str) -> str:
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ServerError(
                f"submit answer has no usable {name}", provider=PROVIDER, model=model, request_id=request_id
            )
        if not self.is_fal_host(value):
            # the key would go with every poll: refuse rather than send it to a host that is not fal's
            raise ServerError(
                f"submit answer's {name} is not on a fal host ({urlsplit(value).hostname})",
                provider=PROVIDER,
                model=model,
                request_id=request_id,
                retryable=False,
            )
        return value

    # -- queue -------------------------------------------------------------------------------------------

    def submit(self, model_id: str, payload: Mapping[str, Any]) -> FalRequest:
        """``POST {queue_url}/{model_id}`` with the raw model input; returns the handle with fal's URLs."""
        model_id = _check_model(model_id)
        response = self._send("POST", f"{self.queue_url}/{model_id}", model=model_id, body=dict(payload))
        data = self._json(response, model=model_id, request_id=None)
        request_id = data.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise ServerError("submit answer has no request_id", provider=PROVIDER, model=model_id)
        status_url = self._handle_url(data.get("status_url"), "status_url", model=model_id, request_id=request_id)
        response_url = self._handle_url(data.get("response_url"), "response_url", model=model_id, request_id=request_id)
        cancel_url = data.get("cancel_url")
        if cancel_url is not None:
            cancel_url = self._handle_url(cancel_url, "cancel_url", model=model_id, request_id=request_id)
        position = data.get("queue_position")
        log.info("fal request submitted: model=%s request_id=%s", model_id, request_id)
        handle = FalRequest(
            request_id=request_id,
            model_id=model_id,
            status_url=status_url,
            response_url=response_url,
            cancel_url=cancel_url,
            queue_position=position if isinstance(position, int) else None,
        )
        # kept under the call's key with the URLs fal gave (always used as given): a later attempt waits on it
        receipts.job_submitted(PROVIDER, model_id, request_id, resume_with=handle.to_json())
        return handle

    def resumed(self, model_id: str, resume_with: str | None) -> FalRequest | None:
        """The earlier request of this call to wait on (``receipts.resuming``), or None to submit a new one.

        Its URLs are checked again as at submit time (a fal host), so a stored handle cannot send the key elsewhere.
        """
        if not resume_with:
            return None
        try:
            data = json.loads(resume_with)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("model_id") != model_id or not data.get("request_id"):
            return None
        rid = str(data["request_id"])
        cancel = data.get("cancel_url")
        return FalRequest(
            request_id=rid,
            model_id=model_id,
            status_url=self._handle_url(data.get("status_url"), "status_url", model=model_id, request_id=rid),
            response_url=self._handle_url(data.get("response_url"), "response_url", model=model_id, request_id=rid),
            cancel_url=self._handle_url(cancel, "cancel_url", model=model_id, request_id=rid) if cancel else None,
        )

    def _fetch_status(self, handle: FalRequest) -> dict[str, Any]:
        response = self._send(
            "GET", handle.status_url, model=handle.model_id, request_id=handle.request_id, params={"logs": "1"}
        )
        return self._json(response, model=handle.model_id, request_id=handle.request_id)

    def status(self, handle: FalRequest) -> FalStatus:
        """One ``GET {status_url}?logs=1``. A finished request whose status carries ``error`` raises it."""
        return self._parse_status(handle, self._fetch_status(handle))

    def _parse_status(self, handle: FalRequest, data: dict[str, Any]) -> FalStatus:
        model, rid = handle.model_id, handle.request_id
        value = data.get("status")
        if value not in ("IN_QUEUE", "IN_PROGRESS"):  # finished (or failed after it started): accounted first
            receipts.answered(receipts.Receipt(provider=PROVIDER, model=model, what=f"status {value}", request_id=rid))
        if value not in QUEUE_STATUSES:
            # FAILED / CANCELED / ERROR are not confirmed values (contract section 4): treat them as a failed job
            if data.get("error") or value in ("FAILED", "ERROR", "CANCELED", "CANCELLED"):
                error_type = data.get("error_type") or (
                    "request_cancelled" if str(value).startswith("CANCEL") else None
                )
                raise error_from_job(data.get("error"), error_type, model=model, api_key=self._api_key, request_id=rid)
            raise ServerError(f"unknown queue status {value!r}", provider=PROVIDER, model=model, request_id=rid)
        if value == "COMPLETED" and (data.get("error") or data.get("error_type")):
            raise error_from_job(
                data.get("error"), data.get("error_type"), model=model, api_key=self._api_key, request_id=rid
            )
        if value == "COMPLETED":
            receipts.job_ready(PROVIDER, model, rid)  # its result can be fetched again, unpaid
        logs = data.get("logs")
        metrics = data.get("metrics")
        if value == "COMPLETED" and isinstance(metrics, dict):
            # the queue contract reports no cost, only the inference time (contract section 4): recorded as such
            seconds = metrics.get("inference_time")
            if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
                receipts.usage_reported(
                    receipts.Usage(
                        PROVIDER,
                        model,
                        {"inference_time_s": float(seconds)},
                        source="metrics.inference_time",
                        request_id=rid,
                    )
                )
        position = data.get("queue_position")
        return FalStatus(
            status=str(value),
            request_id=rid,
            queue_position=position if isinstance(position, int) else None,
            logs=[entry for entry in logs if isinstance(entry, dict)] if isinstance(logs, list) else [],
            metrics=metrics if isinstance(metrics, dict) else {},
        )

    def wait(
        self,
        handle: FalRequest,
        *,
        poll_interval_s: float | None = None,
        timeout_s: float | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> FalStatus:
        """Poll ``status_url`` until ``COMPLETED``. Retryable poll failures (429, 5xx, timeouts) only delay.

        Raises the job's typed error if it finished with one, or :class:`ProviderTimeout` (``retryable=False``:
        the request may still finish; wait again on the same handle rather than resubmit) past ``timeout_s``.
        """
        interval = self.poll_interval_s if poll_interval_s is None else poll_interval_s
        timeout = self.job_timeout_s if timeout_s is None else timeout_s
        sleep = sleep or self._sleep
        clock = clock or self._clock

        def read(data: dict[str, Any]) -> FalStatus | None:
            current = self._parse_status(handle, data)  # a failed job raises here, whatever its class
            return current if current.done else None

        return poll_until_done(
            lambda: self._fetch_status(handle),
            read,
            what=f"fal request {handle.request_id}",
            interval_s=interval,
            timeout_s=timeout,
            timed_out=lambda polls: ProviderTimeout(
                f"request not completed after {polls} poll(s) within {timeout:g}s",
                provider=PROVIDER,
                model=handle.model_id,
                request_id=handle.request_id,
                retryable=False,
            ),
            sleep=sleep,
            clock=clock,
        )

    def result(self, handle: FalRequest) -> dict[str, Any]:
        """``GET {response_url}``: the model output, or the typed error a failed request answers with."""
        response = self._send("GET", handle.response_url, model=handle.model_id, request_id=handle.request_id)
        return self._json(response, model=handle.model_id, request_id=handle.request_id)

    def cancel(self, handle: FalRequest) -> str:
        """``PUT {cancel_url}``; returns the ``status`` fal answers (the body shape is not in the contract)."""
        if handle.cancel_url is None:
            raise ValueError(f"request {handle.request_id} has no cancel_url (it was not returned at submit)")
        response = self._send("PUT", handle.cancel_url, model=handle.model_id, request_id=handle.request_id)
        data = self._json(response, model=handle.model_id, request_id=handle.request_id)
        return str(data.get("status", ""))

    def run(self, model_id: str, payload: Mapping[str, Any]) -> tuple[FalRequest, dict[str, Any]]:
        """submit (or resume this call's earlier request, ``receipts.resuming``), wait (the client's poll interval and
        job timeout), result."""
        handle = self.resumed(model_id, receipts.resuming()) or self.submit(model_id, payload)
        self.wait(handle)
        return handle, self.result(handle)

    def download(self, url: str, *, model: str = "-", request_id: str | None = None) -> bytes:
        """The bytes of an output file: a ``data:`` URI decoded locally, else a GET following redirects.

        The key is sent only to fal's own hosts (:meth:`is_fal_host`); ``*.fal.media`` files get no key.
        """
        if url.startswith("data:"):
            header, _, encoded = url.partition(",")
            if ";base64" not in header:
                raise ServerError(
                    "data URI output is not base64", provider=PROVIDER, model=model, request_id=request_id
                )
            try:
                return base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ServerError(
                    "data URI output is not valid base64", provider=PROVIDER, model=model, request_id=request_id
                ) from exc
        if not url.startswith(("http://", "https://")):
            raise ServerError("output URL is not http(s)", provider=PROVIDER, model=model, request_id=request_id)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send("GET", url, model=model, request_id=request_id)
            if response.is_redirect:
                location = response.headers.get("location")
                if not location:
                    raise ServerError(
                        "redirect without a location", provider=PROVIDER, model=model, request_id=request_id
                    )
                url = urljoin(url, location)
                continue
            if response.status_code != 200:
                raise error_from_response(response, model=model, api_key=self._api_key, request_id=request_id)
            if not response.content:
                raise ServerError(
                    "download returned an empty body", provider=PROVIDER, model=model, request_id=request_id
                )
            return response.content
        raise ServerError(
            f"more than {MAX_REDIRECTS} redirects",
            provider=PROVIDER,
            model=model,
            request_id=request_id,
            retryable=False,
        )

    # -- stage helpers -------------------------------------------------------------------------------------

    def _image_output(self, handle: FalRequest, output: Mapping[str, Any]) -> bytes:
        model, rid = handle.model_id, handle.request_id
        nsfw = output.get("has_nsfw_concepts")
        if isinstance(nsfw, list) and nsfw and nsfw[0] is True:
            raise ContentBlocked(
                "output flagged has_nsfw_concepts", block_reason="has_nsfw_concepts", provider=PROVIDER, model=model,
                request_id=rid,
            )  # fmt: skip
        image = output.get("image")
        if not isinstance(image, dict):
            images = output.get("images")
            image = images[0] if isinstance(images, list) and images and isinstance(images[0], dict) else None
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url:
            raise ServerError("output has no image url", provider=PROVIDER, model=model, request_id=rid)
        data = self.download(url, model=model, request_id=rid)
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ServerError("output file is not an image", provider=PROVIDER, model=model, request_id=rid) from exc
        return data

    def _image_job(self, model_id: str, payload: dict[str, Any]) -> bytes:
        handle, output = self.run(model_id, payload)
        return self._image_output(handle, output)

    def upscale(
        self,
        image_png: bytes,
        *,
        model: str = "fal-ai/clarity-upscaler",
        factor: float = 2,
        prompt: str | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> bytes:
        """Upscale with one of :data:`UPSCALE_MODELS`; returns the output image bytes.

        clarity-upscaler: ``upscale_factor`` (1-4), optional ``prompt``; esrgan: ``scale``; seedvr:
        ``upscale_mode="factor"`` + ``upscale_factor``. ``extra`` adds other documented inputs (e.g.
        ``creativity``, ``resemblance`` for clarity, ``model`` for esrgan).
        """
        if model not in UPSCALE_MODELS:
            raise ValueError(f"unsupported upscale model {model!r}; known: {UPSCALE_MODELS}")
        if not 1 <= factor <= 4:
            raise ValueError("factor must be within 1-4")
        payload: dict[str, Any] = {"image_url": png_data_uri(image_png)}
        if model == "fal-ai/clarity-upscaler":
            payload["upscale_factor"] = factor
            if prompt is not None:
                payload["prompt"] = prompt
        elif model == "fal-ai/esrgan":
            payload["scale"] = factor
        else:
            payload.update(upscale_mode="factor", upscale_factor=factor)
        if seed is not None and model != "fal-ai/esrgan":
            payload["seed"] = seed
        payload.update(extra or {})
        return self._image_job(model, payload)

    def outpaint(
        self,
        image_png: bytes,
        *,
        canvas_size: tuple[int, int],
        original_image_location: tuple[int, int],
        prompt: str | None = None,
        seed: int | None = None,
    ) -> bytes:
        """``fal-ai/bria/expand``: place the image at ``original_image_location`` on a ``canvas_size`` canvas."""
        width, height = _png_size(image_png)
        x, y = original_image_location
        if canvas_size[0] < 1 or canvas_size[1] < 1:
            raise ValueError("canvas_size must be positive")
        if x < 0 or y < 0 or x + width > canvas_size[0] or y + height > canvas_size[1]:
            raise ValueError("the image must fit inside the canvas at original_image_location")
        payload: dict[str, Any] = {
            "image_url": png_data_uri(image_png),
            "canvas_size": [int(canvas_size[0]), int(canvas_size[1])],
            "original_image_size": [width, height],
            "original_image_location": [int(x), int(y)],
        }
        if prompt:
            payload["prompt"] = prompt
        if seed is not None:
            payload["seed"] = seed
        return self._image_job(OUTPAINT_MODEL, payload)

    def inpaint(
        self,
        image_png: bytes,
        mask_png: bytes,
        *,
        prompt: str,
        seed: int | None = None,
        safety_tolerance: str | None = None,
    ) -> bytes:
        """``fal-ai/flux-pro/v1/fill``: regenerate the mask's white area (the usual FLUX convention; unverified)."""
        if not prompt.strip():
            raise ValueError("prompt is empty")
        if _png_size(image_png) != _png_size(mask_png):
            raise ValueError("mask and image sizes differ")
        payload: dict[str, Any] = {
            "image_url": png_data_uri(image_png),
            "mask_url": png_data_uri(mask_png),
            "prompt": prompt,
            "num_images": 1,
            "output_format": "png",
        }
        if seed is not None:
            payload["seed"] = seed
        if safety_tolerance is not None:
            if safety_tolerance not in {str(n) for n in range(1, 7)}:
                raise ValueError('safety_tolerance must be "1"-"6"')
            payload["safety_tolerance"] = safety_tolerance
        return self._image_job(INPAINT_MODEL, payload)
