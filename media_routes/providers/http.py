"""The httpx plumbing the hosted-provider adapters share (:mod:`.gemini`, :mod:`.fal`, :mod:`.kling`).

:class:`HttpProviderClient` owns one ``httpx.Client`` (explicit timeouts, no automatic redirects, so a
credential never follows one), ``close()`` / ``with``, the set of origins that may receive credentials
and :meth:`HttpProviderClient._request`, which maps httpx
timeouts to :class:`ProviderTimeout` and transport failures to :class:`ServerError`. Auth headers, error
mapping and response parsing stay in each provider's module.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import httpx

from media_routes.providers import receipts
from media_routes.providers.errors import AuthError, ProviderTimeout, ServerError

USER_AGENT = "media-routes/0.1 httpx"

Origin = tuple[str, str, int | None]


def origin_of(url: str) -> Origin:
    """``(scheme, lower-cased host, port)`` of ``url``, the port defaulted from the scheme."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


class HttpProviderClient:
    """One ``httpx.Client`` per adapter, credentials for ``trusted_urls``' origins only, typed transport errors.

    Subclasses set :attr:`provider` and :attr:`logger`, build their own auth headers and override
    :meth:`_redact` to scrub their secrets from transport error text.
    """

    provider: ClassVar[str]
    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init__(
        self,
        *,
        timeout: httpx.Timeout | float,
        trusted_urls: Iterable[str],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._trusted_origins = frozenset(origin_of(url) for url in trusted_urls)
        self._http = httpx.Client(
            timeout=timeout,
            follow_redirects=False,  # redirects are followed by hand so credentials never leave trusted origins
            headers={"user-agent": USER_AGENT},
            transport=transport,
        )

    @classmethod
    def _key_from_env(
        cls,
        env: Mapping[str, str] | None,
        key_var: str,
        kwargs: dict[str, Any],
        settings: Mapping[str, tuple[str, str]],
    ) -> str:
        """The API key in ``env[key_var]`` (``os.environ`` by default) for ``from_env``.

        Also fills ``kwargs`` from ``settings`` (keyword -> (variable, default)) where the caller left them out.
        """
        env = os.environ if env is None else env
        api_key = env.get(key_var, "")
        if not api_key.strip():
            raise AuthError(f"{key_var} is not set", provider=cls.provider, model="-")
        for keyword, (name, default) in settings.items():
            kwargs.setdefault(keyword, env.get(name) or default)
        return api_key

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _is_trusted(self, url: str) -> bool:
        """True when ``url`` is on one of the origins that may receive credentials."""
        return origin_of(url) in self._trusted_origins

    def _redact(self, text: str) -> str:
        """``text`` with the client's secrets removed (subclasses holding secrets override this)."""
        return text

    def _request(
        self,
        method: str,
        url: str,
        *,
        model: str,
        headers: dict[str, str],
        request_id: str | None = None,
        where: str = "",
        billable: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request; ``kwargs`` go to ``httpx.Client.request``, ``where`` prefixes errors.

        ``billable``: the request makes the provider generate (and bill) something. Its 2xx answer is reported as a
        :class:`~media_routes.providers.receipts.Receipt` before the caller parses it, and so is a read timeout
        (the request went out, the provider may have finished and billed it; only the answer was lost).
        """
        path = urlsplit(url).path
        kept = receipts.take_replay() if billable else None
        if kept is not None:  # this call's answer arrived before (and was paid for): parsed again, not sent again
            receipts.answered(
                receipts.Receipt(
                    provider=self.provider,
                    model=model,
                    what=f"{method} {path}: HTTP {kept.status} (kept answer)",
                    request_id=request_id,
                    replayed=True,
                )
            )
            self.logger.debug("%s %s model=%s -> %d, the kept answer (not sent)", method, path, model, kept.status)
            return httpx.Response(
                kept.status,
                headers={"content-type": kept.content_type},
                content=kept.body,
                request=httpx.Request(method, url),
            )
        started = time.perf_counter()
        try:
            response = self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            sent = isinstance(exc, httpx.ReadTimeout)  # connect/pool/write timeouts: nothing reached the provider
            if billable and sent:
                receipts.answered(
                    receipts.Receipt(
                        provider=self.provider,
                        model=model,
                        what=f"{method} {path}: read timeout",
                        outcome=receipts.LOST,
                        request_id=request_id,
                        reason="the request was sent and its answer did not arrive in time (it may be billed)",
                    )
                )
            raise ProviderTimeout(
                f"{where}{type(exc).__name__} on {method} {path}",
                provider=self.provider,
                model=model,
                request_id=request_id,
            ) from None  # httpx's exception carries the request (URL, headers with the key): never chain it
        except httpx.TransportError as exc:
            raise ServerError(
                f"{where}{type(exc).__name__} on {method} {path}: {self._redact(str(exc))}",
                provider=self.provider,
                model=model,
                request_id=request_id,
            ) from None  # the redacted message keeps what is useful; the original is not chained
        self.logger.debug(
            "%s %s model=%s -> %d in %.3fs", method, path, model, response.status_code, time.perf_counter() - started
        )
        if billable and response.is_success:
            receipts.answered(
                receipts.Receipt(
                    provider=self.provider,
                    model=model,
                    what=f"{method} {path}: HTTP {response.status_code}",
                    request_id=request_id,
                    answer=receipts.KeptAnswer(
                        response.status_code, response.headers.get("content-type", ""), response.content
                    ),
                )
            )
        return response

    def _parse_json(self, response: httpx.Response, *, model: str, request_id: str | None) -> object:
        """The decoded JSON body; a body that is not JSON (e.g. truncated) raises :class:`ServerError`."""
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(
                f"HTTP {response.status_code} with a body that is not JSON (truncated?)",
                provider=self.provider,
                model=model,
                request_id=request_id,
                status_code=response.status_code,
            ) from exc
