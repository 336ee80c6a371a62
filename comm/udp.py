"""UDP drivers for the sans-IO ARQ core (:mod:`bss2.comm.arq`): they own the socket, the clock and threads.

* :class:`UdpLink` — blocking client: ``request(payload) -> reply``, one message each way.
* :class:`UdpServer` / :func:`serve_udp` — serves one session at a time with ``handler(bytes) -> bytes``,
  rejects other clients with BUSY, frees the session when the client vanishes (lease timeout).

Both run a small background thread that keeps the session alive while the foreground is elsewhere: the
client's pings the server between requests so that the server's lease does not expire while the user
computes; the server's acknowledges, answers pings and rejects other clients while a long handler runs
(it steps in after the handler has run for 2 ms). Small requests take no thread hand-off: the calling
thread drives the socket itself, which keeps the round trip of a small message near 100 µs on loopback.

Socket buffers are enlarged to :data:`SOCKET_BUFFER_BYTES` (capped by the kernel's rmem_max / wmem_max);
datagrams the kernel drops anyway are recovered by the protocol like any other loss.
"""

from __future__ import annotations

import collections
import logging
import select
import socket
import threading
import time
from dataclasses import replace
from typing import Callable, Hashable

from . import arq
from .errors import ChipBusy, CommTimeoutError, ConnectionLost, HandshakeError

__all__ = ["UdpLink", "UdpServer", "serve_udp", "SOCKET_BUFFER_BYTES"]

_log = logging.getLogger("bss2.comm")

#: Requested SO_RCVBUF / SO_SNDBUF in bytes; the kernel caps it at net.core.rmem_max / wmem_max.
SOCKET_BUFFER_BYTES = 16 * 1024 * 1024
_MAX_DATAGRAM = 65_535
_DRAIN_BATCH = 16  # datagrams read before we send acknowledgements (and data the acks allow) again


def _make_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER_BYTES)
        except OSError as exc:  # some platforms refuse large values; the protocol still works
            _log.debug("setsockopt(%s) failed: %s", opt, exc)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port={port!r} out of range [0, 65535]")


def _check_timeout(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name}={value!r} must be > 0 seconds")


class _Driver:
    """Socket + endpoint + lock; ``_pump`` moves datagrams and timers, tagging events with a session number."""

    def __init__(self, sock: socket.socket, endpoint: arq.Endpoint) -> None:
        self._sock = sock
        self._ep = endpoint
        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[int, arq.Event]] = collections.deque()
        self._generation = 0  # increments whenever a session starts or ends
        self._refused = False
        self._closed = False

    def _flush(self, now: float) -> None:
        for data, peer in self._ep.datagrams_to_send(now):
            if peer is None:
                continue
            try:
                self._sock.sendto(data, peer)
            except (BlockingIOError, InterruptedError):
                _log.debug("send buffer full, %d B datagram dropped (will be retransmitted)", len(data))
            except ConnectionRefusedError:
                self._refused = True
            except OSError as exc:  # e.g. ENOBUFS, EMSGSIZE on an exotic route: treat as loss
                _log.debug("sendto %r failed: %s", peer, exc)

    def _pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for datagrams, feed them, run timers, send; thread-safe."""
        if self._closed:
            return
        ep = self._ep
        with self._lock:
            deadline = ep.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        if timeout > 0:
            try:
                select.select([self._sock], [], [], timeout)
            except (OSError, ValueError):  # socket closed under us by close()
                return
        with self._lock:
            if self._closed:
                return
            sock = self._sock
            for _ in range(64):  # bounded: at most 64 x 16 datagrams per pump
                batch = 0
                while batch < _DRAIN_BATCH:
                    try:
                        data, addr = sock.recvfrom(_MAX_DATAGRAM)
                    except (BlockingIOError, InterruptedError):
                        break
                    except ConnectionRefusedError:
                        self._refused = True
                        break
                    except OSError as exc:
                        _log.debug("recvfrom failed: %s", exc)
                        break
                    batch += 1
                    try:
                        ep.receive_datagram(data, time.monotonic(), peer=addr)
                    except Exception:  # a protocol bug must not take the server down with it
                        _log.debug("datagram from %r raised inside the protocol core", addr, exc_info=True)
                now = time.monotonic()
                deadline = ep.next_deadline()
                if deadline is not None and deadline <= now:
                    ep.handle_timeout(now)
                self._flush(now)
                if batch < _DRAIN_BATCH:
                    break
            for event in ep.events():
                if isinstance(event, arq.HandshakeComplete):
                    self._generation += 1
                self._pending.append((self._generation, event))
                if isinstance(event, (arq.ConnectionLost, arq.Closed, arq.Rejected)):
                    self._generation += 1

    def _close_socket(self) -> None:
        with self._lock:
            self._closed = True
            self._sock.close()


class UdpLink(_Driver):
    """Blocking client of a :class:`UdpServer`: one session, ``request(payload) -> reply``.

    ``timeout`` (s, > 0) bounds each request until its reply is complete; ``connect_timeout`` (s) bounds
    the handshake. Raises :class:`ChipBusy` when the server serves another client, :class:`HandshakeError`
    on version / parameter / token mismatch, :class:`ConnectionLost` when the session dies and
    :class:`CommTimeoutError` when a reply is late; after any of these the link is unusable (a late reply
    must never be taken for the answer to a later request).
    """

    def __init__(
        self,
        host: str,
        port: int,
        token: bytes | str | None = None,
        timeout: float = 60.0,
        *,
        connect_timeout: float = 5.0,
        config: arq.ArqConfig | None = None,
        bind: str | None = None,
        nonce_source: Callable[[int], bytes] | None = None,
    ) -> None:
        _check_port(port)
        _check_timeout("timeout", timeout)
        _check_timeout("connect_timeout", connect_timeout)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        # prefer IPv4: "localhost" often resolves to ::1 first while servers bind 127.0.0.1
        addr = next((i[4] for i in infos if i[0] == socket.AF_INET), infos[0][4])[:2]
        sock = _make_socket(bind or ("::" if ":" in addr[0] else "0.0.0.0"), 0)
        try:
            sock.connect(addr)  # lets the kernel report "connection refused" when nothing listens
        except OSError:
            sock.close()
            raise
        kwargs = {"token": token}
        if nonce_source is not None:
            kwargs["nonce_source"] = nonce_source
        super().__init__(sock, arq.Endpoint("client", config, **kwargs))
        self.address: tuple = addr
        self.timeout = timeout
        self._request_lock = threading.Lock()
        self._in_request = False
        self._broken: Exception | None = None
        self._stop = threading.Event()
        with self._lock:
            self._ep.connect(time.monotonic(), peer=addr)
            self._flush(time.monotonic())
        try:
            self._wait(time.monotonic() + connect_timeout, "handshake", connect_timeout)
        except BaseException:
            self._close_socket()
            raise
        self._keeper = threading.Thread(target=self._keepalive_loop, name="bss2-udp-keepalive", daemon=True)
        self._keeper.start()

    @property
    def max_payload(self) -> int | None:
        """Negotiated bytes per frame."""
        return self._ep.max_payload

    def request(self, payload: bytes | bytearray | memoryview, timeout: float | None = None) -> bytes:
        """Send one message and return the server's one reply message (complete, bit-exact).

        ``timeout`` (s) overrides the link's default for this call. Do not modify ``payload`` until this
        returns: frames are built from it lazily.
        """
        if timeout is not None:
            _check_timeout("timeout", timeout)
        limit = self.timeout if timeout is None else timeout
        with self._request_lock:
            if self._broken is not None:
                raise ConnectionLost(f"link to {self.address} is unusable: {self._broken}")
            self._in_request = True
            try:
                while self._pending:  # something the keepalive thread saw while we were away
                    _, event = self._pending.popleft()
                    if isinstance(event, arq.MessageReceived):
                        _log.debug("dropped an unsolicited %d B message", len(event.data))
                    else:
                        self._raise_for(event)
                with self._lock:
                    self._ep.send_message(payload, time.monotonic())
                    self._flush(time.monotonic())
                return self._wait(time.monotonic() + limit, "reply", limit)
            except BaseException as exc:
                self._broken = exc
                raise
            finally:
                self._in_request = False

    def _wait(self, deadline: float, what: str, limit: float) -> bytes:
        while True:
            while self._pending:
                _, event = self._pending.popleft()
                if isinstance(event, arq.MessageReceived):
                    return event.data
                if isinstance(event, arq.HandshakeComplete):
                    return b""
                self._raise_for(event)
            if self._refused:
                raise ConnectionLost(f"server {self.address} unreachable (connection refused) during {what}")
            now = time.monotonic()
            if now >= deadline:
                raise CommTimeoutError(f"no {what} from {self.address} within timeout={limit} s")
            self._pump(min(deadline - now, 0.5))

    def _raise_for(self, event: arq.Event) -> None:
        if isinstance(event, arq.Rejected):
            if event.reason is arq.RejectReason.BUSY:
                raise ChipBusy(f"server {self.address} is busy with another client: {event.detail}")
            raise HandshakeError(f"server {self.address} rejected the handshake "
                                 f"({event.reason.name}): {event.detail}")
        if isinstance(event, arq.ConnectionLost):
            raise ConnectionLost(f"session with {self.address} lost: {event.reason}")
        if isinstance(event, arq.Closed):
            raise ConnectionLost(f"session with {self.address} closed by "
                                 f"{'the server' if event.by_peer else 'us'}")

    def _keepalive_loop(self) -> None:
        period = min(self._ep.config.keepalive_interval / 4, 0.25)
        while not self._stop.wait(period):
            if self._in_request or self._broken is not None:
                continue
            try:
                self._pump(0.0)
            except Exception:  # never let the helper die silently with the lock held
                _log.debug("keepalive pump failed", exc_info=True)

    def close(self, timeout: float = 1.0) -> None:
        """End the session (FIN, waits up to ``timeout`` s for the server's answer) and free the socket."""
        if self._closed:
            return
        self._stop.set()
        with self._request_lock:
            if self._broken is None and self._ep.is_established:
                with self._lock:
                    self._ep.close(time.monotonic())
                    self._flush(time.monotonic())
                deadline = time.monotonic() + timeout
                while self._ep.state is not arq.State.CLOSED and time.monotonic() < deadline:
                    if self._refused:
                        break
                    self._pump(min(0.05, max(0.0, deadline - time.monotonic())))
            self._broken = self._broken or ConnectionLost("link closed")
            self._close_socket()
        self._keeper.join(timeout=1.0)

    def __enter__(self) -> "UdpLink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UdpServer(_Driver):
    """Serves one client session at a time over UDP; ``handler(request: bytes) -> bytes`` computes replies.

    Binds to ``host`` (default loopback only) and ``port`` (0 picks a free one; see :attr:`address`).
    ``lease_timeout`` (s, > 0): a client silent this long is dropped and the server accepts others.
    A handler exception is logged and ends the session (the client sees :class:`ConnectionLost`).
    """

    def __init__(
        self,
        handler: Callable[[bytes], bytes | bytearray | memoryview],
        host: str = "127.0.0.1",
        port: int = 0,
        token: bytes | str | None = None,
        lease_timeout: float = 10.0,
        *,
        config: arq.ArqConfig | None = None,
    ) -> None:
        _check_port(port)
        _check_timeout("lease_timeout", lease_timeout)
        cfg = config if config is not None else arq.ArqConfig()
        cfg = replace(cfg, idle_timeout=lease_timeout, keepalive_interval=min(cfg.keepalive_interval, lease_timeout))
        super().__init__(_make_socket(host, port), arq.Endpoint("server", cfg, token=token))
        self.handler = handler
        self.address: tuple = self._sock.getsockname()
        self._stop = threading.Event()
        self._handler_since: float | None = None
        self._thread: threading.Thread | None = None

    def serve_forever(self, stop_event: threading.Event | None = None) -> None:
        """Serve until :meth:`stop` (or ``stop_event`` is set); closes the socket on return."""
        keeper = threading.Thread(target=self._service_while_handling, name="bss2-udp-serve-keeper", daemon=True)
        keeper.start()
        try:
            while not self._stop.is_set() and not (stop_event is not None and stop_event.is_set()):
                self._pump(0.05)
                while self._pending:
                    generation, event = self._pending.popleft()
                    if isinstance(event, arq.MessageReceived):
                        self._answer(generation, event.data)
                    elif isinstance(event, arq.HandshakeComplete):
                        _log.debug("session %08x with %r started", event.session_id, event.peer)
                    else:
                        _log.debug("session ended: %r", event)
        finally:
            self._stop.set()
            keeper.join(timeout=1.0)
            self._close_socket()

    def _answer(self, generation: int, request: bytes) -> None:
        self._handler_since = time.monotonic()
        try:
            reply = self.handler(request)
            failed = None
        except Exception as exc:
            _log.exception("handler failed on a %d B request", len(request))
            reply, failed = b"", exc
        finally:
            self._handler_since = None
        with self._lock:
            if generation != self._generation or not self._ep.is_established:
                _log.debug("session ended while the handler ran; reply dropped")
                return
            now = time.monotonic()
            if failed is None:
                try:
                    self._ep.send_message(reply, now)
                except TypeError:
                    _log.exception("handler returned %s, not a bytes-like object", type(reply).__name__)
                    failed = True
            if failed is not None:
                self._ep.close(now)
            self._flush(now)

    def _service_while_handling(self) -> None:
        # a handler that runs longer than a few ms must not starve acks, pings and BUSY rejections
        while not self._stop.wait(0.005):
            since = self._handler_since
            if since is not None and time.monotonic() - since > 0.002:
                try:
                    self._pump(0.0)
                except Exception:
                    _log.debug("service pump failed", exc_info=True)

    def start(self) -> "UdpServer":
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="bss2-udp-server", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving (the current session simply ends; its client sees a lost connection)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "UdpServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_udp(
    host: str,
    port: int,
    handler: Callable[[bytes], bytes | bytearray | memoryview],
    token: bytes | str | None = None,
    lease_timeout: float = 10.0,
    stop_event: threading.Event | None = None,
    *,
    config: arq.ArqConfig | None = None,
) -> None:
    """Blocking server loop: ``UdpServer(handler, host, port, ...).serve_forever(stop_event)``."""
    UdpServer(handler, host, port, token, lease_timeout, config=config).serve_forever(stop_event)
