"""What the provider stub servers share (:mod:`.google_stub`, :mod:`.fal_stub`, :mod:`.kling_stub`).

:class:`StubServer` runs one ``ThreadingHTTPServer`` per listener (``"api"``, and a ``"cdn"`` for stubs that
serve files from another origin) in background threads on 127.0.0.1, port 0; it records requests, counts
them per route, keeps the queue of faults that tests switch on with ``fail_next`` and writes JSON or raw
answers. Routing, auth, validation and the fault answers stay in each stub.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


class StubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    stub: StubServer[Any]
    listener: str


class StubHandler(BaseHTTPRequestHandler):
    """Hands every GET and POST to the stub's ``_handle``; a stub that serves other methods subclasses this."""

    protocol_version = "HTTP/1.1"
    server: StubHTTPServer

    def do_GET(self) -> None:
        self.server.stub._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.stub._handle(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:
        self.server.stub._log_request(self.server.listener, format % args)


@dataclass
class Fault:
    kind: str
    remaining: int
    routes: frozenset[str]
    options: dict[str, Any]


class Recorded(Protocol):
    @property
    def route(self) -> str: ...


RequestT = TypeVar("RequestT", bound=Recorded)


class StubServer(Generic[RequestT]):
    """Server threads, request log, fault queue and answer helpers. Use as a context manager, or start/stop."""

    name: ClassVar[str] = "stub"  # thread names and log lines
    listeners: ClassVar[tuple[str, ...]] = ("api",)
    handler_class: ClassVar[type[StubHandler]] = StubHandler
    poll_interval_s: ClassVar[float] = 0.05
    faults: ClassVar[Mapping[str, frozenset[str]]] = {}  # fault kind -> routes it may apply to
    json_content_type: ClassVar[str] = "application/json"
    json_indent: ClassVar[int | None] = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[RequestT] = []
        self._faults: list[Fault] = []
        self._servers: dict[str, StubHTTPServer] = {}
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Self:
        for listener in self.listeners:
            server = StubHTTPServer((HOST, 0), self.handler_class)
            server.stub = self
            server.listener = listener
            self._configure(server)
            self._servers[listener] = server
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": self.poll_interval_s},
                name=f"{self.name}-{listener}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = {}, []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _configure(self, server: StubHTTPServer) -> None:
        """Hook run on each listener's server before it starts (e.g. to wrap its socket in TLS)."""

    def _port(self, listener: str = "api") -> int:
        server = self._servers.get(listener)
        assert server is not None, "stub not started"
        return int(server.server_address[1])

    def _base_url(self, listener: str = "api", scheme: str = "http") -> str:
        return f"{scheme}://{HOST}:{self._port(listener)}"

    @property
    def port(self) -> int:
        return self._port()

    # -- request log -------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestT]:
        with self._lock:
            return list(self._requests)

    def calls(self, route: str | None = None) -> int:
        """Requests received (on ``route`` when given), valid or not."""
        with self._lock:
            return sum(1 for r in self._requests if route is None or r.route == route)

    def _record(self, request: RequestT) -> None:
        with self._lock:
            self._requests.append(request)

    def _scrub(self, text: str) -> str:
        """``text`` without the stub's secrets (for log lines)."""
        return text

    def _log_request(self, listener: str, message: str) -> None:
        log.debug("%s %s: %s", self.name, listener, self._scrub(message))

    # -- faults ------------------------------------------------------------------------------------------

    def fail_next(self, kind: str, count: int = 1, *, route: str | Iterable[str] | None = None, **options: Any) -> None:
        """Make the next ``count`` matching requests fail (or vary) as ``kind`` (a key of :attr:`faults`).

        ``route`` narrows where it applies (default: all the routes ``faults[kind]`` names).
        """
        if kind not in self.faults:
            raise ValueError(f"unknown fault {kind!r}; known: {sorted(self.faults)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        routes = self.faults[kind] if route is None else frozenset([route] if isinstance(route, str) else route)
        if not routes <= self.faults[kind]:
            raise ValueError(f"{kind} applies only to {sorted(self.faults[kind])}")
        self._add_fault(kind, count, routes, options)

    def _add_fault(self, kind: str, count: int, routes: frozenset[str], options: Mapping[str, Any]) -> None:
        with self._lock:
            self._faults.append(Fault(kind, count, routes, dict(options)))

    def pending_faults(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def _take_fault(self, route: str, kinds: frozenset[str] | None = None) -> Fault | None:
        """Use up one of the first queued fault for ``route`` (of one of ``kinds``, when given)."""
        with self._lock:
            for fault in self._faults:
                if route in fault.routes and (kinds is None or fault.kind in kinds) and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return Fault(fault.kind, 1, fault.routes, fault.options)
        return None

    # -- wire --------------------------------------------------------------------------------------------

    def _handle(self, handler: StubHandler, method: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _read_body(handler: BaseHTTPRequestHandler) -> tuple[Any, str | None]:
        """(parsed JSON, None when empty, or the raw text when it is not JSON; the JSON error or None)."""
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if not raw:
            return None, None
        try:
            return json.loads(raw), None
        except ValueError as exc:  # JSONDecodeError or UnicodeDecodeError
            return raw.decode("utf-8", "replace"), str(exc)

    def _send_json(
        self,
        handler: BaseHTTPRequestHandler,
        code: int,
        payload: Mapping[str, Any],
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload, indent=self.json_indent).encode()
        self._send_bytes(handler, code, data, self.json_content_type, extra_headers)

    def _send_bytes(
        self,
        handler: BaseHTTPRequestHandler,
        code: int,
        data: bytes,
        content_type: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()


# camera moves a stub's video can make from its input image (see image_video_frames); all but push_in are ones an
# ECC alignment of the still to the frame cannot follow (issue #14 item 5)
VIDEO_MOTIONS = ("push_in", "hard_cut", "whip_pan", "wrap_scroll")


def image_video_frames(image_png: bytes, size: tuple[int, int], n_frames: int, motion: str = "push_in") -> list[Any]:
    """Frames of a camera move over ``image_png`` at ``size`` (what an image-to-video model starts from).

    The stubs use it so a hosted motion stage gets a video that looks like its still (not a flat colour), which the
    stage's frame gates and brand measurement can work on. ``motion``:

    - ``push_in`` (default): a slow 6 % zoom to the centre, the move an alignment follows;
    - ``hard_cut``: the push-in for the first half, then a cut to another shot (the image mirrored left to right,
      framed 1.6x tighter below the centre and seen from below, a keystone no affine warp matches): the mirrored
      headline of a model that "cut to the reverse angle";
    - ``whip_pan``: still for the first 30 %, then a pan of 1.5 image widths over the next 30 % with horizontal
      motion blur (across the image and its mirror images), then held on the far side;
    - ``wrap_scroll``: the image scrolled left to right by one full width over the clip, wrapping around.
    """
    import io

    import cv2
    import numpy as np
    from PIL import Image

    if motion not in VIDEO_MOTIONS:
        raise ValueError(f"motion must be one of {VIDEO_MOTIONS}, got {motion!r}")
    with Image.open(io.BytesIO(image_png)) as img:
        base = img.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    w, h = size
    mirrored = base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # the shot after the cut: mirrored, 1.6x tighter below the centre and seen from below (a keystone: the top edge
    # 30 % narrower), so no affine warp of the image matches it
    zoomed = mirrored.resize(size, Image.Resampling.BILINEAR, box=(w * 0.1875, h * 0.3075, w * 0.8125, h * 0.9325))
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    dst = np.array([[0.15 * w, 0], [0.85 * w, 0], [w, h], [0, h]], dtype=np.float32)
    keystone = cv2.getPerspectiveTransform(dst, src)  # output pixel -> input pixel
    cut_shot = cv2.warpPerspective(
        np.asarray(zoomed), keystone, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
    )
    panorama = Image.new("RGB", (3 * w, h))
    for k, tile in enumerate((mirrored, base, mirrored)):
        panorama.paste(tile, (k * w, 0))
    frames = []
    for i in range(n_frames):
        t = i / max(1, n_frames - 1)
        if motion == "push_in" or (motion == "hard_cut" and i < n_frames // 2):
            zoom = 1.0 + 0.06 * t
            cw, ch = w / zoom, h / zoom
            box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
            frames.append(np.asarray(base.resize(size, Image.Resampling.BILINEAR, box=box)))
        elif motion == "hard_cut":
            frames.append(cut_shot)
        elif motion == "whip_pan":
            progress = min(1.0, max(0.0, (t - 0.3) / 0.3))
            x = round(w + progress * 1.5 * w) if progress < 1 else 2 * w
            frame = np.asarray(panorama.crop((x, 0, x + w, h)))
            if 0.0 < progress < 1.0:  # horizontal motion blur
                frame = cv2.blur(frame, (max(3, w // 20), 1))
            frames.append(frame)
        else:  # wrap_scroll
            frames.append(np.roll(np.asarray(base), round(t * w), axis=1))
    return frames
