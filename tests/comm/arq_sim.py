"""A deterministic simulated network for the sans-IO ARQ core: virtual clock, seeded faults."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from bss2.comm.arq import ArqConfig, Endpoint, Event


@dataclass
class Faults:
    """Per-datagram fault probabilities and delays in seconds (virtual time)."""

    loss: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    reorder: float = 0.0  # probability of an extra delay of up to ``reorder_delay``
    delay: float = 50e-6
    reorder_delay: float = 2e-3


@dataclass
class Net:
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    now: float = 0.0
    endpoints: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    blackholed: set = field(default_factory=set)  # labels whose traffic (in and out) vanishes
    delivered_datagrams: int = 0
    log: list = field(default_factory=list)  # (src, dst, bytes) of every datagram put on the wire
    #: explicit per-datagram fate, used cyclically instead of the random rates when given:
    #: "ok", "drop", "dup", "corrupt", "late" (held back by ``reorder_delay``)
    schedule: list | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._heap: list = []
        self._counter = 0

    def nonce_source(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def add(self, label: str, role: str, config: ArqConfig | None = None, token=None) -> Endpoint:
        ep = Endpoint(role, config, token=token, nonce_source=self.nonce_source)
        self.endpoints[label] = ep
        self.events.setdefault(label, [])
        return ep

    def of(self, label: str, cls: type[Event]) -> list:
        return [e for e in self.events[label] if isinstance(e, cls)]

    def inject(self, src: str, dst: str, data: bytes, delay: float = 0.0) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (self.now + delay, self._counter, src, dst, data))

    def _flush(self) -> None:
        f = self.faults
        for label, ep in list(self.endpoints.items()):
            for data, dst in ep.datagrams_to_send(self.now):
                self.log.append((label, dst, data))
                if label in self.blackholed or dst in self.blackholed:
                    continue
                if self.schedule:
                    self._apply_schedule(label, dst, data)
                    continue
                copies = 2 if self.rng.random() < f.duplicate else 1
                for _ in range(copies):
                    if self.rng.random() < f.loss:
                        continue
                    out = data
                    if self.rng.random() < f.corrupt and len(out) > 0:
                        buf = bytearray(out)
                        for _ in range(self.rng.randint(1, 3)):
                            buf[self.rng.randrange(len(buf))] ^= 1 << self.rng.randrange(8)
                        out = bytes(buf)
                    delay = f.delay
                    if self.rng.random() < f.reorder:
                        delay += self.rng.random() * f.reorder_delay
                    self.inject(label, dst, out, delay)

    def _apply_schedule(self, src: str, dst: str, data: bytes) -> None:
        fate = self.schedule[self._counter % len(self.schedule)]
        self._counter += 1
        if fate == "drop":
            return
        if fate == "corrupt":
            buf = bytearray(data)
            buf[self.rng.randrange(len(buf))] ^= 1 << self.rng.randrange(8)
            data = bytes(buf)
        self.inject(src, dst, data, self.faults.delay + (self.faults.reorder_delay if fate == "late" else 0.0))
        if fate == "dup":
            self.inject(src, dst, data, 2 * self.faults.delay)

    def _collect(self) -> None:
        for label, ep in self.endpoints.items():
            self.events[label].extend(ep.events())

    def step(self) -> bool:
        """Advance to the next arrival or timer; False when nothing is left to happen."""
        self._flush()
        times = [t for t in (ep.next_deadline() for ep in self.endpoints.values()) if t is not None]
        if self._heap:
            times.append(self._heap[0][0])
        if not times:
            return False
        self.now = max(self.now, min(times))
        while self._heap and self._heap[0][0] <= self.now:
            _, _, src, dst, data = heapq.heappop(self._heap)
            ep = self.endpoints.get(dst)
            if ep is not None and dst not in self.blackholed:
                self.delivered_datagrams += 1
                ep.receive_datagram(data, self.now, peer=src)
        for ep in self.endpoints.values():
            deadline = ep.next_deadline()
            if deadline is not None and deadline <= self.now:
                ep.handle_timeout(self.now)
        self._collect()
        self._flush()
        return True

    def run_until(self, predicate, max_steps: int = 200_000, max_time: float = 600.0) -> bool:
        for _ in range(max_steps):
            self._collect()
            if predicate():
                return True
            if self.now > max_time or not self.step():
                break
        self._collect()
        return predicate()

    def run_for(self, duration: float, max_steps: int = 200_000) -> None:
        end = self.now + duration
        self.run_until(lambda: self.now >= end, max_steps=max_steps, max_time=end)
