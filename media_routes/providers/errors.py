"""Typed provider errors shared by every adapter.

Every error names the provider, the model, a human-readable reason and, when the provider gave one,
a request id. ``retryable`` tells :func:`media_routes.providers.retry.call_with_retries` whether the
same request may be sent again. Messages are scrubbed of anything that looks like an API key, and
adapters additionally pass their own key to :func:`redact` before building a reason from provider text.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

REDACTED = "[REDACTED]"
_MAX_REASON_CHARS = 600

# Shapes of credentials in echoed text (an error body, an exception message, a URL). Each pattern keeps its
# first group (the name: "Authorization: Bearer ", "?token=", "https://") and replaces the value.
_VALUE = r"(?!\[REDACTED\])[^\s,;&#\"'}\]]+"
_SCHEMES = r"(?:bearer|key|basic|token)"
_KEY_PATTERNS = (
    # Google API keys: "AIza" + 35 characters
    re.compile(r"()AIza[0-9A-Za-z_\-]{35}"),
    # JWTs (Kling's bearer tokens): three base64url parts, the first a JSON header
    re.compile(r"()eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"),
    # fal keys "<uuid>:<hex>" (a bare uuid, e.g. a request id, is kept)
    re.compile(r"()\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}:[0-9a-fA-F]{16,}\b"),
    # Authorization header values: "Authorization: Bearer <token>", "Key <id:secret>", "Basic <b64>", or bare
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?" + _SCHEMES + r"\s+)" + _VALUE),
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!" + _SCHEMES + r"\s)" + _VALUE),
    # a bearer credential anywhere else ("Bearer <token>"; the value must hold a digit, so prose is kept)
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)(?=[^\s]*[0-9])" + _VALUE),
    # key headers: x-goog-api-key, x-api-key, api-key
    re.compile(r"(?i)((?:x-goog-api-key|x-api-key|api-key)[\"']?\s*[:=]\s*[\"']?)" + _VALUE),
    # query parameters and form fields
    re.compile(
        r"(?i)([?&;](?:key|api_key|apikey|access_token|token|auth|signature|sig|secret|password|x-amz-signature"
        r"|x-amz-credential|x-amz-security-token)=)" + _VALUE
    ),
    # quoted fields in JSON, YAML or a repr: "api_key": "...", 'key': '...', "token": "..."
    re.compile(
        r"(?i)([\"'](?:api_?key|apikey|key|token|access_token|refresh_token|id_token|secret|client_secret"
        r"|key_secret|password|passwd)[\"']\s*[:=]\s*[\"']?)(?!(?:null|none|true|false)\b)" + _VALUE
    ),
    # unquoted fields: api_key=..., token: ..., password=... (a bare "key" is too common a word to match)
    re.compile(
        r"(?i)(\b(?:api_?key|apikey|access_token|refresh_token|id_token|client_secret|key_secret|secret|password"
        r"|passwd|token)\s*[:=]\s*[\"']?)(?!(?:null|none|true|false)\b)" + _VALUE
    ),
    # user:password@ in URLs
    re.compile(r"(?i)([a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@"),
)


def redact(text: str, *secrets: str | None) -> str:
    """Return ``text`` with the given secrets and anything shaped like a credential replaced by ``[REDACTED]``:
    Google API keys, JWTs, fal ``id:secret`` keys, ``Authorization`` values (Bearer, Key, Basic), key headers,
    ``?key=`` / ``?access_token=`` / ``?token=`` parameters, ``api_key`` / ``key`` / ``token`` fields in JSON or
    reprs, and ``user:pass@`` in URLs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _KEY_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + (REDACTED + "@" if "://" in m.group(1) else REDACTED), text)
    return text


def _rebuild(cls: type[ProviderError], state: dict[str, Any]) -> ProviderError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("reason", ""))
    err.__dict__.update(state)
    return err


class ProviderError(Exception):
    """A provider call failed. ``retryable`` says whether sending the same request again may succeed."""

    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        reason: str,
        *,
        provider: str,
        model: str,
        request_id: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        reason = redact(reason)
        if len(reason) > _MAX_REASON_CHARS:
            reason = reason[: _MAX_REASON_CHARS - 3] + "..."
        super().__init__(reason)
        self.reason = reason
        self.provider = provider
        self.model = model
        self.request_id = request_id
        self.status_code = status_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.attempts = 1  # set by call_with_retries when it gives up

    def _extras(self) -> list[str]:
        return []

    def __str__(self) -> str:
        parts = [f"{type(self).__name__}: provider={self.provider} model={self.model}"]
        if self.status_code is not None:
            parts.append(f"http={self.status_code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        parts.extend(self._extras())
        if self.attempts > 1:
            parts.append(f"attempts={self.attempts}")
        return redact(" ".join(parts) + f": {self.reason}")

    def __repr__(self) -> str:
        return f"<{self}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor arguments break the default Exception pickling (Dagster pickles failures).
        return (_rebuild, (type(self), dict(self.__dict__)))


class AuthError(ProviderError):
    """The API key is missing, malformed or invalid (Gemini answers 400 API_KEY_INVALID; others 401)."""


class PermissionDenied(ProviderError):
    """The key is valid but may not call this model or project (403)."""


class RateLimited(ProviderError):
    """Too many requests right now (429); wait at least ``retry_after`` seconds when it is known."""

    default_retryable = True

    def __init__(self, reason: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(reason, **kwargs)
        self.retry_after = retry_after

    def _extras(self) -> list[str]:
        return [f"retry_after={self.retry_after:g}s"] if self.retry_after is not None else []


class QuotaExhausted(ProviderError):
    """A daily (or longer) quota, a zero quota or billing is exhausted (429); waiting seconds will not help.

    ``provider_wide``: the quota holds back every model behind the key (a project quota, an exhausted balance),
    not only the model called (a per-model quota). Balance and billing answers are provider-wide; Gemini decides
    from the quota ids (``gemini.quota_is_provider_wide``).
    """

    def __init__(self, reason: str, *, provider_wide: bool = True, **kwargs: Any) -> None:
        super().__init__(reason, **kwargs)
        self.provider_wide = provider_wide

    def _extras(self) -> list[str]:
        return [] if self.provider_wide else ["scope=model"]


class ContentBlocked(ProviderError):
    """The provider refused the prompt or filtered the output (safety, recitation, RAI)."""

    def __init__(self, reason: str, *, block_reason: str | None = None, **kwargs: Any) -> None:
        super().__init__(reason, **kwargs)
        self.block_reason = block_reason

    def _extras(self) -> list[str]:
        return [f"block_reason={self.block_reason}"] if self.block_reason else []


class ServerError(ProviderError):
    """The provider failed (5xx, a broken connection or an unreadable success response)."""

    default_retryable = True


class ProviderTimeout(ProviderError):
    """The request or the long-running job did not finish in time."""

    default_retryable = True


class BadRequest(ProviderError):
    """The provider rejected the request itself (any other 4xx, unknown model, invalid argument)."""
