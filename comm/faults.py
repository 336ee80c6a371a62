"""A fault-injecting UDP relay for tests and benchmarks of the reliable link.

:class:`FaultyRelay` listens on a loopback port and forwards every datagram to a target and the answers
back, dropping, duplicating, corrupting (flipping 1-3 random bits), delaying and reordering them with a
seeded random generator. Each client address gets its own upstream socket, so the target sees distinct
peers as it would without the relay. Everything is bounded: clients, held datagrams and per-wake work.
"""

from __future__ import annotations

import heapq
import logging
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, fields, replace

__all__ = ["FaultSpec", "FaultyRelay"]

_log = logging.getLogger("bss2.comm")
_MAX_DATAGRAM = 65_535


@dataclass(frozen=True)
class FaultSpec:
    """Per-datagram fault probabilities (0..1) and delays (seconds), applied in both directions.

    ``delay`` is added to every datagram, ``jitter`` uniformly at random on top; with probability
    ``reorder`` a datagram is held back an extra ``reorder_delay`` (uniform) so later ones overtake it.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder_delay: float = 0.002

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            high = 1.0 if f.name in ("loss", "duplicate", "corrupt", "reorder") else 10.0
            if not 0.0 <= value <= high:
                raise ValueError(f"{f.name}={value!r} out of range [0, {high}]")


class FaultyRelay:
    """UDP relay ``address`` -> ``target`` with seeded faults; run it with :meth:`start` / :meth:`stop`.

    ``max_clients`` bounds the upstream sockets, ``max_held`` the datagrams waiting for their delay
    (beyond it new ones are dropped, as a full router queue would).
    """

    def __init__(
        self,
        target: tuple[str, int],
        faults: FaultSpec | None = None,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        max_clients: int = 64,
        max_held: int = 8192,
    ) -> None:
        if not 1 <= max_clients <= 4096:
            raise ValueError(f"max_clients={max_clients} out of range [1, 4096]")
        if not 1 <= max_held <= 1_000_000:
            raise ValueError(f"max_held={max_held} out of range [1, 1000000]")
        self.target = target
        self.faults = faults if faults is not None else FaultSpec()
        self._rng = random.Random(seed)
        self._front = self._socket(host, port)
        self.address: tuple = self._front.getsockname()
        self._upstream: dict[tuple, socket.socket] = {}
        self._client_of: dict[socket.socket, tuple] = {}
        self._max_clients = max_clients
        self._max_held = max_held
        self._held: list = []  # heap of (release time, counter, socket, data, destination)
        self._counter = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._front, selectors.EVENT_READ)
        #: counters per fault kind
        self.stats: dict[str, int] = dict.fromkeys(
            ("forwarded", "dropped", "duplicated", "corrupted", "reordered", "overflow"), 0)

    @staticmethod
    def _socket(host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, 16 * 1024 * 1024)
            except OSError:
                pass
        sock.bind((host, port))
        sock.setblocking(False)
        return sock

    def set_faults(self, **changes: float) -> None:
        """Change fault parameters while running, e.g. ``set_faults(loss=1.0)`` to cut the link."""
        self.faults = replace(self.faults, **changes)

    # -------------------------------------------------------------------------------------- plumbing

    def _schedule(self, sock: socket.socket, data: bytes, dest: tuple, now: float) -> None:
        f, rng = self.faults, self._rng
        copies = 2 if rng.random() < f.duplicate else 1
        if copies == 2:
            self.stats["duplicated"] += 1
        for _ in range(copies):
            if rng.random() < f.loss:
                self.stats["dropped"] += 1
                continue
            out = data
            if out and rng.random() < f.corrupt:
                buf = bytearray(out)
                for _ in range(rng.randint(1, 3)):
                    buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
                out = bytes(buf)
                self.stats["corrupted"] += 1
            delay = f.delay + (rng.random() * f.jitter if f.jitter else 0.0)
            if rng.random() < f.reorder:
                delay += rng.random() * f.reorder_delay
                self.stats["reordered"] += 1
            if delay <= 0.0 and not self._held:
                self._send(sock, out, dest)
            elif len(self._held) >= self._max_held:
                self.stats["overflow"] += 1
            else:
                self._counter += 1
                heapq.heappush(self._held, (now + delay, self._counter, sock, out, dest))

    def _send(self, sock: socket.socket, data: bytes, dest: tuple) -> None:
        try:
            sock.sendto(data, dest)
            self.stats["forwarded"] += 1
        except OSError as exc:  # full buffer, refused, gone: the relay is a lossy network anyway
            _log.debug("relay send to %r failed: %s", dest, exc)

    def _upstream_for(self, client: tuple) -> socket.socket | None:
        sock = self._upstream.get(client)
        if sock is None:
            if len(self._upstream) >= self._max_clients:
                return None
            sock = self._socket("::" if ":" in self.address[0] else "127.0.0.1", 0)
            self._upstream[client] = sock
            self._client_of[sock] = client
            self._selector.register(sock, selectors.EVENT_READ)
        return sock

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            while self._held and self._held[0][0] <= now:
                _, _, sock, data, dest = heapq.heappop(self._held)
                self._send(sock, data, dest)
            timeout = 0.05 if not self._held else max(0.0, min(0.05, self._held[0][0] - now))
            for key, _ in self._selector.select(timeout):
                sock = key.fileobj
                for _ in range(256):  # bounded work per wake
                    try:
                        data, addr = sock.recvfrom(_MAX_DATAGRAM)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # e.g. ICMP refused from a dead target: ignore
                        break
                    now = time.monotonic()
                    if sock is self._front:
                        upstream = self._upstream_for(addr)
                        if upstream is not None:
                            self._schedule(upstream, data, self.target, now)
                    else:
                        self._schedule(self._front, data, self._client_of[sock], now)

    def start(self) -> "FaultyRelay":
        """Run the relay in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._loop, name="bss2-faulty-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop forwarding and close all sockets."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._selector.close()
        for sock in [self._front, *self._upstream.values()]:
            sock.close()

    def __enter__(self) -> "FaultyRelay":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
