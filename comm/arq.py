"""Sans-IO core of the reliable message transport between host and chip server.

The protocol is a pure state machine in the style of h11 / aioquic: it owns no socket, thread, clock or
random source. A driver (see :mod:`bss2.comm.udp`) feeds it datagrams and the current time and sends what it
asks to send::

    ep = Endpoint("client", ArqConfig(), token=b"secret")
    ep.connect(now)
    ep.send_message(payload, now)            # queued until the handshake completes
    for datagram, peer in ep.datagrams_to_send(now):
        sock.sendto(datagram, address)
    ...                                      # wait for a datagram or until ep.next_deadline()
    ep.receive_datagram(datagram, now, peer=address)
    ep.handle_timeout(now)
    for event in ep.events():                # HandshakeComplete, MessageReceived, Rejected, ...
        ...

Guarantees: each message handed to :meth:`Endpoint.send_message` is delivered to the peer's
:class:`MessageReceived` complete, bit-exact, in order and exactly once, or the session ends with
:class:`ConnectionLost` (never with a partial message).

Wire format (network byte order). Every frame starts with a 16-byte common header::

    magic u16 (0xB532) | version u8 | type u8 | src session id u32 | dst session id u32 | crc32 u32

The CRC32 covers the first 12 header bytes followed by everything after the CRC field; frames that fail it,
carry an unknown magic or are too short are dropped silently. Session ids are fresh random 32-bit values per
session and side, so frames of an earlier session (stale) never match.

==========  =========================================================================================
type        body after the common header
==========  =========================================================================================
HELLO       client nonce (16 B), max payload u32 (B), window u32 (frames), initial seq u32
ACCEPT      server nonce (16 B), max payload u32, window u32, initial seq u32, flags u8,
            idle timeout u32 (ms), proof (32 B: HMAC-SHA256 or zeros)
CONFIRM     proof (32 B)
REJECT      reason u8, detail (UTF-8, rest of frame)
DATA        seq u32, flags u8 (bit 0: last frame of a message), payload
ACK         next expected seq u32, receive window u32 (frames), n u8, n x (start u32, end u32) SACK ranges
PING/PONG   ping id u32
FIN         seq u32 (one past the last data frame)
FIN_ACK     (empty)
RESET       (empty; "I have no session with id dst")
==========  =========================================================================================

Handshake: client HELLO -> server ACCEPT -> client CONFIRM -> server ACK. The server negotiates the smaller
of both sides' max payload and window; a client that cannot accept the ACCEPT (token, parameters) answers
REJECT so the server frees the slot at once. A server ignores HELLOs of recently ended sessions, so a late
duplicate cannot reopen one. With a shared token, ACCEPT carries HMAC(token, "server" + nonces +
ids) and CONFIRM carries HMAC(token, "client" + ...), so both sides prove knowledge of the token without
sending it. A server that already has a session answers a HELLO from another peer with REJECT(BUSY); a
HELLO from the *same* peer address with a new session id means the client restarted: the old session is
dropped (``ConnectionLost``) and the new one accepted.

Reliability: 32-bit sequence numbers (serial arithmetic, unwrapped to Python ints internally), sliding
window bounded by the negotiated window, the receiver's advertised window and a congestion window (halved
on loss), cumulative + selective acknowledgements, RACK-style fast retransmit (a frame is lost once three
frames sent after it were acknowledged), RFC 6298 RTT estimation with Karn's rule and exponential backoff.
After ``max_retransmissions`` consecutive timeouts without progress the session fails. A client pings the
server when idle; either side declares the session lost after ``idle_timeout`` seconds without a valid
frame from the peer (the server's lease). :meth:`Endpoint.close` sends FIN once all data is acknowledged.

Memory: a message passed as ``bytes`` or a read-only buffer is not copied until each frame is built (one
copy per frame into the datagram); the caller must not modify a writable buffer until it has been
acknowledged. Received frames are kept as views of their datagrams and joined once per message.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import struct
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Callable, Hashable

from . import errors

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_FRAME_PAYLOAD",
    "MIN_FRAME_PAYLOAD",
    "ArqConfig",
    "Endpoint",
    "State",
    "RejectReason",
    "Event",
    "HandshakeComplete",
    "MessageReceived",
    "Rejected",
    "ConnectionLost",
    "Closed",
]

_log = logging.getLogger("bss2.comm")

PROTOCOL_VERSION = 1
_MAGIC = 0xB532
_SEQ_MOD = 1 << 32
_SEQ_MASK = _SEQ_MOD - 1
_HALF = 1 << 31

_PRE = struct.Struct("!HBBII")  # magic, version, type, src sid, dst sid
_U32 = struct.Struct("!I")
_HEADER_LEN = _PRE.size + 4  # 16
_DATA = struct.Struct("!IB")
_HELLO = struct.Struct("!16sIII")
_ACCEPT = struct.Struct("!16sIIIBI32s")
_ACK = struct.Struct("!IIB")
_RANGE = struct.Struct("!II")
_REJECT = struct.Struct("!B")

#: Largest UDP payload over IPv4 is 65 507 B; minus our 16 B header and 5 B DATA header.
MAX_FRAME_PAYLOAD = 65_507 - _HEADER_LEN - _DATA.size
#: Smallest frame payload we negotiate; the original link used 1440 B and must stay possible.
MIN_FRAME_PAYLOAD = 256
_MAX_WINDOW = 1 << 15  # far below 2**31 so serial-number comparison stays unambiguous
_MAX_SACK_RANGES = 32
_DUPTHRESH = 3  # frames delivered after a frame before we call it lost (as TCP's dupack threshold)
_FLAG_END = 0x01
_FLAG_AUTH = 0x01
_ZERO_PROOF = bytes(32)


class _T(enum.IntEnum):
    HELLO = 1
    ACCEPT = 2
    CONFIRM = 3
    REJECT = 4
    DATA = 5
    ACK = 6
    PING = 7
    PONG = 8
    FIN = 9
    FIN_ACK = 10
    RESET = 11


class RejectReason(enum.IntEnum):
    """Why a server refused a handshake."""

    BUSY = 1  #: another client holds the session
    VERSION = 2  #: protocol versions differ
    PARAMETERS = 3  #: proposed max payload / window out of the allowed range
    AUTH = 4  #: token missing or wrong


class State(enum.Enum):
    IDLE = "idle"  # client before connect()
    LISTEN = "listen"  # server without a session
    HELLO_SENT = "hello-sent"
    CONFIRMING = "confirming"  # client got ACCEPT, waits for the server's first ACK
    ACCEPTED = "accepted"  # server sent ACCEPT, waits for CONFIRM
    ESTABLISHED = "established"
    CLOSING = "closing"  # FIN queued or sent
    CLOSED = "closed"  # client only: terminal


# ---------------------------------------------------------------------------------------------- events


class Event:
    """Base class of everything :meth:`Endpoint.events` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class HandshakeComplete(Event):
    """A session is open. ``max_payload`` (bytes per frame) and ``window`` (frames) are the negotiated values."""

    session_id: int
    peer_session_id: int
    max_payload: int
    window: int
    peer: Hashable = None


class MessageReceived(Event):
    """One complete message from the peer, ``data`` (bytes).

    The frames are joined into one ``bytes`` object on first access of :attr:`data`, so that a driver can
    acknowledge the last frame before paying for the copy of a large message.
    """

    __slots__ = ("_parts", "_data")

    def __init__(self, data: bytes | None = None, *, parts: list[memoryview] | None = None) -> None:
        self._data = data
        self._parts = parts

    @property
    def data(self) -> bytes:
        if self._data is None:
            parts = self._parts or []
            self._data = b"".join(parts) if len(parts) != 1 else bytes(parts[0])
            self._parts = None
        return self._data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MessageReceived) and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MessageReceived(<{len(self.data)} B>)"


@dataclass(frozen=True, slots=True)
class Rejected(Event):
    """The handshake was refused (by the server, or locally when the server failed authentication)."""

    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class ConnectionLost(Event):
    """The session ended abnormally; messages not yet delivered are lost as a whole, never in part."""

    reason: str


@dataclass(frozen=True, slots=True)
class Closed(Event):
    """The session ended cleanly; ``by_peer`` tells who closed it."""

    by_peer: bool


# ---------------------------------------------------------------------------------------------- config


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name}={value!r} out of range [{low}, {high}]")


@dataclass(frozen=True, slots=True)
class ArqConfig:
    """Protocol parameters. Times in seconds.

    ``max_payload`` (bytes of message data per frame, ``MIN_FRAME_PAYLOAD``..``MAX_FRAME_PAYLOAD``) and
    ``window`` (frames in flight, 2..32768) are proposals: the session uses the smaller of both sides'.
    The default 60 KiB frames suit loopback-class links (MTU 64 KiB); use 1440 for a 1500 B Ethernet MTU.
    """

    max_payload: int = 60 * 1024
    window: int = 128
    initial_rto: float = 0.2
    min_rto: float = 0.004
    max_rto: float = 2.0
    max_retransmissions: int = 12
    keepalive_interval: float = 1.0
    idle_timeout: float = 10.0
    max_message_size: int = 1 << 31
    initial_cwnd: int = 32
    initial_sequence: int | None = None  # None: drawn from the nonce source (tests pin it for wrap-around)

    def __post_init__(self) -> None:
        _check_range("max_payload", self.max_payload, MIN_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD)
        _check_range("window", self.window, 2, _MAX_WINDOW)
        _check_range("min_rto", self.min_rto, 1e-6, 60.0)
        _check_range("max_rto", self.max_rto, self.min_rto, 600.0)
        _check_range("initial_rto", self.initial_rto, self.min_rto, self.max_rto)
        _check_range("max_retransmissions", self.max_retransmissions, 1, 1000)
        _check_range("keepalive_interval", self.keepalive_interval, 1e-3, 3600.0)
        _check_range("idle_timeout", self.idle_timeout, self.keepalive_interval, 86_400.0)
        _check_range("max_message_size", self.max_message_size, 0, 1 << 40)
        _check_range("initial_cwnd", self.initial_cwnd, 2, _MAX_WINDOW)
        if self.initial_sequence is not None:
            _check_range("initial_sequence", self.initial_sequence, 0, _SEQ_MASK)


# ---------------------------------------------------------------------------------------------- session


class _Segment:
    """One DATA frame in flight: the built datagram is kept so a retransmission costs no re-encoding."""

    __slots__ = ("seq", "frame", "sent_at", "tx_count", "tx_stamp", "sacked", "retx_queued")

    def __init__(self, seq: int, frame: bytes) -> None:
        self.seq = seq
        self.frame = frame
        self.sent_at = 0.0
        self.tx_count = 0
        self.tx_stamp = 0
        self.sacked = False
        self.retx_queued = False


class _Session:
    """Everything that belongs to one session; a server replaces it wholesale per client."""

    def __init__(self, sid: int, nonce: bytes, isn: int, peer: Hashable) -> None:
        self.sid = sid
        self.nonce = nonce
        self.peer = peer
        self.peer_sid = 0
        self.peer_nonce = b""
        self.max_payload = 0
        self.window = 0
        self.auth = False
        self.accept_frame = b""  # server: re-sent on duplicate HELLO
        self.confirm_frame = b""  # client: re-sent until the server's first ACK
        self.hs_deadline: float | None = None
        self.hs_tries = 0
        self.hs_sent_at = 0.0
        self.last_heard = 0.0
        self.last_ping = 0.0
        self.ping_id = 0
        self.peer_idle_timeout = 0.0
        # sender
        self.snd_una = isn
        self.snd_next = isn
        self.isn = isn
        self.segments: dict[int, _Segment] = {}
        self.queue: deque[list] = deque()  # [memoryview, offset]
        self.retx: list[int] = []
        self.tx_stamp = 0
        self.delivered_stamp = 0
        self.cwnd = 2.0
        self.ssthresh = float(_MAX_WINDOW)
        self.recovery_until: int | None = None
        self.peer_rwnd = 2
        self.timer_at: float | None = None
        self.timeouts = 0
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = 0.0
        self.fin_wanted = False
        self.fin_sent_at: float | None = None
        self.fin_tries = 0
        # receiver
        self.rcv_next = 0
        self.ooo: dict[int, tuple[memoryview, bool]] = {}
        self.parts: list[memoryview] = []
        self.parts_size = 0
        self.ack_pending = False


def _unwrap(wire: int, ref: int) -> int:
    """Map a 32-bit wire sequence number to the unbounded number nearest to ``ref``."""
    diff = (wire - ref) & _SEQ_MASK
    if diff >= _HALF:
        diff -= _SEQ_MOD
    return ref + diff


class _Malformed(Exception):
    pass


# ---------------------------------------------------------------------------------------------- endpoint


class Endpoint:
    """One side of the reliable message transport.

    ``role`` is ``"client"`` (opens one session with :meth:`connect`) or ``"server"`` (accepts one session
    at a time, rejects other peers with BUSY, and returns to listening when a session ends). ``token``
    (bytes or str) enables mutual HMAC-SHA256 authentication; both sides must hold the same one.
    ``nonce_source(n) -> n bytes`` supplies session ids, nonces and initial sequence numbers (default
    :func:`os.urandom`; tests inject a seeded generator).

    ``peer`` arguments are opaque hashable labels (the driver passes socket addresses); datagrams to send
    come back paired with the label of the peer they are addressed to.
    """

    def __init__(
        self,
        role: str,
        config: ArqConfig | None = None,
        *,
        token: bytes | str | None = None,
        nonce_source: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role={role!r}; allowed: 'client', 'server'")
        self.role = role
        self.config = config if config is not None else ArqConfig()
        if isinstance(token, str):
            token = token.encode()
        if token is not None and len(token) == 0:
            raise ValueError("token=b'' is empty; pass None for no authentication")
        self._token = token
        self._nonce_source = nonce_source
        self._events: deque[Event] = deque()
        self._out: list[tuple[bytes, Hashable]] = []
        self._s: _Session | None = None
        self.state = State.IDLE if role == "client" else State.LISTEN
        # server: client session ids of ended sessions, so a late duplicate HELLO cannot reopen one
        self._ended_sids: deque[int] = deque(maxlen=64)
        #: counters for diagnostics and benchmarks (whole endpoint lifetime)
        self.stats: dict[str, int] = dict.fromkeys(
            ("data_frames_sent", "retransmissions", "timeouts", "datagrams_dropped", "messages_received"), 0)

    # ------------------------------------------------------------------------------------ public API

    @property
    def session_id(self) -> int | None:
        """This side's id of the current session, or None."""
        return self._s.sid if self._s is not None else None

    @property
    def peer(self) -> Hashable:
        """Label of the current session's peer (None without a session)."""
        return self._s.peer if self._s is not None else None

    @property
    def srtt(self) -> float | None:
        """Smoothed round-trip time in seconds, once measured."""
        return self._s.srtt if self._s is not None else None

    @property
    def max_payload(self) -> int | None:
        """Negotiated bytes of message data per frame (None before the handshake)."""
        return self._s.max_payload or None if self._s is not None else None

    @property
    def is_established(self) -> bool:
        return self.state is State.ESTABLISHED

    def has_pending_data(self) -> bool:
        """True while messages are queued or frames are unacknowledged."""
        s = self._s
        return s is not None and bool(s.queue or s.segments)

    def connect(self, now: float, peer: Hashable = None) -> None:
        """Client: start the handshake with ``peer`` (a label handed back with the datagrams)."""
        if self.role != "client" or self.state is not State.IDLE:
            raise RuntimeError(f"connect() needs a fresh client endpoint, this one is {self.role}/{self.state.value}")
        s = self._new_session(peer)
        s.last_heard = now
        self._s = s
        self.state = State.HELLO_SENT
        self._send_hello(now)

    def send_message(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Queue one message (any length, including 0 bytes) for in-order, exactly-once delivery.

        A client may queue before the handshake completes. Raises :class:`bss2.comm.errors.ConnectionLost`
        when there is no session to send on.
        """
        ok = (State.HELLO_SENT, State.CONFIRMING, State.ESTABLISHED)
        if self.state not in ok or self._s is None or self._s.fin_wanted:
            raise errors.ConnectionLost(f"cannot send: endpoint state is {self.state.value!r}, needs one of "
                             f"{[s.value for s in ok]}")
        try:
            view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        except TypeError as exc:  # e.g. a non-contiguous numpy view
            raise TypeError(f"data must be a contiguous bytes-like object, got {type(data).__name__}: {exc}") from None
        self._s.queue.append([view, 0])

    def close(self, now: float) -> None:
        """End the session cleanly: queued data is delivered first, then FIN; :class:`Closed` follows."""
        s = self._s
        if s is None or self.state in (State.CLOSED, State.LISTEN, State.IDLE):
            return
        if self.state is State.ESTABLISHED:
            s.fin_wanted = True
            self.state = State.CLOSING
        elif self.state in (State.HELLO_SENT, State.CONFIRMING):
            s.fin_wanted = True  # finish the handshake, deliver what is queued, then FIN
        elif self.state is State.ACCEPTED:
            self._reset_server()

    def events(self) -> list[Event]:
        """All pending events, oldest first."""
        out = list(self._events)
        self._events.clear()
        return out

    def next_event(self) -> Event | None:
        """The oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def receive_datagram(self, data: bytes, now: float, peer: Hashable = None) -> None:
        """Feed one datagram received from ``peer``. Malformed, corrupt and stale datagrams are dropped."""
        try:
            self._receive(data, now, peer)
        except (_Malformed, struct.error, ValueError) as exc:
            self.stats["datagrams_dropped"] += 1
            _log.debug("dropped datagram of %d B from %r: %s", len(data), peer, exc)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Hashable]]:
        """Datagrams to put on the wire now, each with the label of its destination peer."""
        out = self._out
        self._out = []
        s = self._s
        if s is None or self.state not in (State.ESTABLISHED, State.CLOSING):
            return out
        if s.ack_pending:
            out.append((self._ack_frame(s), s.peer))
            s.ack_pending = False
        if s.retx:
            for seq in s.retx:
                seg = s.segments.get(seq)
                if seg is not None and seg.retx_queued:
                    seg.retx_queued = False
                    self._transmit(s, seg, now, out)
            s.retx.clear()
        limit = min(int(s.cwnd), s.peer_rwnd, s.window)
        while s.queue and s.snd_next - s.snd_una < limit:
            seg = self._next_segment(s)
            s.segments[seg.seq] = seg
            self._transmit(s, seg, now, out)
        if s.fin_wanted and not s.queue and not s.segments and s.fin_sent_at is None:
            out.append((self._fin_frame(s), s.peer))
            s.fin_sent_at = now
            s.fin_tries = 1
        if self.role == "client" and self.state is State.ESTABLISHED:
            quiet = max(s.last_heard, s.last_ping)
            if now >= quiet + self._keepalive(s):  # same expression as next_deadline(): no float drift
                s.ping_id = (s.ping_id + 1) & _SEQ_MASK
                s.last_ping = now
                out.append((self._frame(s, _T.PING, _U32.pack(s.ping_id)), s.peer))
        return out

    def next_deadline(self) -> float | None:
        """Absolute time (same clock as ``now``) at which :meth:`handle_timeout` must run, or None."""
        s = self._s
        if s is None or self.state in (State.CLOSED, State.IDLE, State.LISTEN):
            return None
        cands = [s.last_heard + self.config.idle_timeout]
        if s.hs_deadline is not None:
            cands.append(s.hs_deadline)
        if s.timer_at is not None:
            cands.append(s.timer_at)
        if s.fin_sent_at is not None:
            cands.append(s.fin_sent_at + self._rto(s))
        if self.role == "client" and self.state is State.ESTABLISHED:
            cands.append(max(s.last_heard, s.last_ping) + self._keepalive(s))
        return min(cands)

    def handle_timeout(self, now: float) -> None:
        """Run timers due at ``now``: retransmissions, keepalive, idle timeout (lease)."""
        s = self._s
        if s is None or self.state in (State.CLOSED, State.IDLE, State.LISTEN):
            return
        cfg = self.config
        if now >= s.last_heard + cfg.idle_timeout:
            if self.state is State.ACCEPTED:  # half-open handshake never confirmed: free the slot quietly
                _log.debug("half-open session %08x expired", s.sid)
                self._reset_server()
            else:
                self._end(ConnectionLost(f"no frame from peer for {now - s.last_heard:.3f} s "
                                         f"(idle_timeout={cfg.idle_timeout} s)"))
            return
        if s.hs_deadline is not None and now >= s.hs_deadline:
            if s.hs_tries > cfg.max_retransmissions:
                self._end(ConnectionLost(f"handshake unanswered after {s.hs_tries} tries "
                                         f"(max_retransmissions={cfg.max_retransmissions})"))
                return
            if self.state is State.HELLO_SENT:
                self._send_hello(now)
            elif self.state is State.CONFIRMING:
                self._out.append((s.confirm_frame, s.peer))
                self._arm_handshake(s, now)
        if s.timer_at is not None and now >= s.timer_at:
            self._on_rto(s, now)
            if self._s is not s:
                return
        if s.fin_sent_at is not None and now >= s.fin_sent_at + self._rto(s):
            if s.fin_tries > cfg.max_retransmissions:
                self._end(Closed(by_peer=False))  # best effort: the peer is gone, we are closed anyway
                return
            s.fin_tries += 1
            s.fin_sent_at = now
            self._out.append((self._fin_frame(s), s.peer))

    # ------------------------------------------------------------------------------------ frames out

    def _frame(self, s: _Session | None, t: _T, body: bytes = b"", *, src: int | None = None,
               dst: int | None = None) -> bytes:
        src = s.sid if src is None else src
        dst = s.peer_sid if dst is None else dst
        pre = _PRE.pack(_MAGIC, PROTOCOL_VERSION, t, src, dst)
        crc = zlib.crc32(body, zlib.crc32(pre))
        return b"".join((pre, _U32.pack(crc), body))

    def _ack_frame(self, s: _Session) -> bytes:
        ranges: list[tuple[int, int]] = []
        if s.ooo:
            start = prev = None
            for seq in sorted(s.ooo):
                if prev is not None and seq == prev + 1:
                    prev = seq
                    continue
                if start is not None:
                    ranges.append((start, prev + 1))
                start = prev = seq
            ranges.append((start, prev + 1))
            # the newest ranges tell the sender most about what was delivered after a hole
            ranges = ranges[-_MAX_SACK_RANGES:]
        body = [_ACK.pack(s.rcv_next & _SEQ_MASK, max(0, s.window - len(s.ooo)), len(ranges))]
        body += [_RANGE.pack(a & _SEQ_MASK, b & _SEQ_MASK) for a, b in ranges]
        return self._frame(s, _T.ACK, b"".join(body))

    def _fin_frame(self, s: _Session) -> bytes:
        return self._frame(s, _T.FIN, _U32.pack(s.snd_next & _SEQ_MASK))

    def _next_segment(self, s: _Session) -> _Segment:
        item = s.queue[0]
        view, off = item
        n = min(len(view) - off, s.max_payload)
        end = off + n >= len(view)
        if end:
            s.queue.popleft()
        else:
            item[1] = off + n
        chunk = view[off:off + n]
        seq = s.snd_next
        s.snd_next += 1
        pre = _PRE.pack(_MAGIC, PROTOCOL_VERSION, _T.DATA, s.sid, s.peer_sid)
        dh = _DATA.pack(seq & _SEQ_MASK, _FLAG_END if end else 0)
        crc = zlib.crc32(chunk, zlib.crc32(dh, zlib.crc32(pre)))
        return _Segment(seq, b"".join((pre, _U32.pack(crc), dh, chunk)))

    def _transmit(self, s: _Session, seg: _Segment, now: float, out: list) -> None:
        seg.sent_at = now
        seg.tx_count += 1
        self.stats["data_frames_sent"] += 1
        if seg.tx_count > 1:
            self.stats["retransmissions"] += 1
        s.tx_stamp += 1
        seg.tx_stamp = s.tx_stamp
        out.append((seg.frame, s.peer))
        if s.timer_at is None:
            s.timer_at = now + self._rto(s)

    def _send_hello(self, now: float) -> None:
        s = self._s
        body = _HELLO.pack(s.nonce, self.config.max_payload, self.config.window, s.isn & _SEQ_MASK)
        self._out.append((self._frame(s, _T.HELLO, body, dst=0), s.peer))
        if s.hs_tries == 0:
            s.hs_sent_at = now
        self._arm_handshake(s, now)

    def _arm_handshake(self, s: _Session, now: float) -> None:
        s.hs_tries += 1
        s.hs_deadline = now + min(self.config.initial_rto * (2 ** (s.hs_tries - 1)), self.config.max_rto)

    def _reject(self, reason: RejectReason, detail: str, client_sid: int, peer: Hashable) -> None:
        _log.debug("rejecting %r: %s (%s)", peer, reason.name, detail)
        body = _REJECT.pack(reason) + detail.encode()[:512]
        self._out.append((self._frame(None, _T.REJECT, body, src=0, dst=client_sid), peer))

    # ------------------------------------------------------------------------------------ frames in

    def _receive(self, data: bytes, now: float, peer: Hashable) -> None:
        if len(data) < _HEADER_LEN:
            raise _Malformed("shorter than header")
        mv = memoryview(data)
        magic, version, ftype, src, dst = _PRE.unpack_from(mv)
        if magic != _MAGIC:
            raise _Malformed(f"bad magic 0x{magic:04x}")
        (crc,) = _U32.unpack_from(mv, _PRE.size)
        if zlib.crc32(mv[_HEADER_LEN:], zlib.crc32(mv[:_PRE.size])) != crc:
            raise _Malformed("CRC mismatch")
        try:
            t = _T(ftype)
        except ValueError:
            raise _Malformed(f"unknown frame type {ftype}") from None
        body = mv[_HEADER_LEN:]
        if version != PROTOCOL_VERSION and t not in (_T.HELLO, _T.REJECT):
            raise _Malformed(f"version {version} frame outside handshake")
        if self.role == "server":
            self._receive_server(t, version, src, dst, body, now, peer)
        else:
            self._receive_client(t, src, dst, body, now)

    def _receive_server(self, t: _T, version: int, src: int, dst: int, body: memoryview, now: float,
                        peer: Hashable) -> None:
        s = self._s
        if t is _T.HELLO:
            self._on_hello(version, src, body, now, peer)
            return
        if s is None or dst != s.sid or src != s.peer_sid:
            # no session with this id: tell the sender so a client notices our restart quickly
            if t is _T.FIN:
                self._out.append((self._frame(None, _T.FIN_ACK, src=dst, dst=src), peer))
            elif t in (_T.DATA, _T.ACK, _T.PING, _T.CONFIRM):
                self._out.append((self._frame(None, _T.RESET, src=0, dst=src), peer))
            return
        s.peer = peer  # follow the client if its address changes within a session (NAT rebinding)
        if t is _T.REJECT:  # the client refused our ACCEPT (token or parameters): free the slot now
            if self.state is State.ACCEPTED:
                _log.debug("client %r refused the handshake", peer)
                self._reset_server()
            return
        if t is _T.CONFIRM:
            if len(body) != 32:
                raise _Malformed("CONFIRM length")
            if self.state is State.ACCEPTED:
                if self._token is not None:
                    expected = self._proof(b"client", s.peer_nonce, s.nonce, s.peer_sid, s.sid)
                    if not hmac.compare_digest(expected, bytes(body)):
                        self._reject(RejectReason.AUTH, "client token proof does not match", src, peer)
                        self._reset_server()
                        return
                if s.hs_tries == 1:
                    self._rtt_sample(s, now - s.hs_sent_at)
                s.hs_deadline = None
                self.state = State.ESTABLISHED
                self._events.append(HandshakeComplete(s.sid, s.peer_sid, s.max_payload, s.window, peer))
            s.last_heard = now
            s.ack_pending = True  # the client's proof of our acceptance
            return
        if self.state is State.ACCEPTED:
            return  # nothing but CONFIRM counts before the client proved itself
        s.last_heard = now
        self._receive_session(t, body, now)

    def _on_hello(self, version: int, client_sid: int, body: memoryview, now: float, peer: Hashable) -> None:
        s = self._s
        if s is not None and client_sid == s.peer_sid:
            if self.state is State.ACCEPTED:  # our ACCEPT got lost
                self._out.append((s.accept_frame, peer))
            return
        if client_sid in self._ended_sids:
            return
        if version != PROTOCOL_VERSION:
            self._reject(RejectReason.VERSION, f"server speaks protocol version {PROTOCOL_VERSION}, "
                         f"client {version}", client_sid, peer)
            return
        if len(body) != _HELLO.size:
            raise _Malformed("HELLO length")
        nonce, payload, window, isn = _HELLO.unpack(body)
        if s is not None:
            if peer != s.peer:
                self._reject(RejectReason.BUSY, "server already serves another client", client_sid, peer)
                return
            # same address, new session id: the client restarted, its old session is dead
            if self.state is not State.ACCEPTED:
                self._events.append(ConnectionLost("peer restarted (new session id from the same address)"))
            self._reset_server()
        if not (MIN_FRAME_PAYLOAD <= payload <= MAX_FRAME_PAYLOAD and 2 <= window <= _MAX_WINDOW):
            self._reject(RejectReason.PARAMETERS,
                         f"max_payload={payload} (allowed {MIN_FRAME_PAYLOAD}..{MAX_FRAME_PAYLOAD}), "
                         f"window={window} (allowed 2..{_MAX_WINDOW})", client_sid, peer)
            return
        s = self._new_session(peer)
        s.peer_sid = client_sid
        s.peer_nonce = bytes(nonce)
        s.max_payload = min(payload, self.config.max_payload)
        s.window = min(window, self.config.window)
        s.rcv_next = isn
        s.auth = self._token is not None
        s.last_heard = now
        s.hs_sent_at = now
        s.hs_tries = 1
        proof = self._proof(b"server", s.peer_nonce, s.nonce, s.peer_sid, s.sid) if s.auth else _ZERO_PROOF
        body = _ACCEPT.pack(s.nonce, s.max_payload, s.window, s.isn & _SEQ_MASK,
                            _FLAG_AUTH if s.auth else 0, int(self.config.idle_timeout * 1000), proof)
        s.accept_frame = self._frame(s, _T.ACCEPT, body)
        self._init_sender(s)
        self._s = s
        self.state = State.ACCEPTED
        self._out.append((s.accept_frame, peer))

    def _receive_client(self, t: _T, src: int, dst: int, body: memoryview, now: float) -> None:
        s = self._s
        if s is None or dst != s.sid:
            return
        if self.state is State.CLOSED:
            if t is _T.ACCEPT:  # a late answer to a duplicate HELLO: free the server's half-open slot
                self._out.append((self._frame(s, _T.REJECT, _REJECT.pack(RejectReason.PARAMETERS)
                                              + b"session already closed", dst=src), s.peer))
            return
        if t is _T.REJECT:
            if self.state in (State.HELLO_SENT, State.CONFIRMING):
                if len(body) < 1:
                    raise _Malformed("REJECT length")
                try:
                    reason = RejectReason(body[0])
                except ValueError:
                    raise _Malformed(f"unknown reject reason {body[0]}") from None
                self._end(Rejected(reason, bytes(body[1:]).decode("utf-8", "replace")))
            return
        if t is _T.RESET:
            if self.state in (State.ESTABLISHED, State.CLOSING, State.CONFIRMING):
                if s.fin_sent_at is not None:
                    self._end(Closed(by_peer=False))
                else:
                    self._end(ConnectionLost("peer has no such session (it restarted or expired our lease)"))
            return
        if t is _T.ACCEPT:
            if self.state is State.HELLO_SENT:
                self._on_accept(src, body, now)
            return
        if src != s.peer_sid or self.state is State.HELLO_SENT:
            return
        s.last_heard = now
        if self.state is State.CONFIRMING:
            if t not in (_T.ACK, _T.DATA, _T.PONG):
                return
            s.hs_deadline = None
            self.state = State.CLOSING if s.fin_wanted else State.ESTABLISHED
            self._events.append(HandshakeComplete(s.sid, s.peer_sid, s.max_payload, s.window, s.peer))
        self._receive_session(t, body, now)

    def _refuse_accept(self, server_sid: int, reason: RejectReason, detail: str) -> None:
        # tell the server, so that it frees its half-open session at once instead of after its lease
        body = _REJECT.pack(reason) + detail.encode()[:512]
        self._out.append((self._frame(self._s, _T.REJECT, body, dst=server_sid), self._s.peer))
        self._end(Rejected(reason, detail))

    def _on_accept(self, server_sid: int, body: memoryview, now: float) -> None:
        s = self._s
        if len(body) != _ACCEPT.size:
            raise _Malformed("ACCEPT length")
        nonce, payload, window, isn, flags, idle_ms, proof = _ACCEPT.unpack(body)
        if not (MIN_FRAME_PAYLOAD <= payload <= self.config.max_payload and 2 <= window <= self.config.window):
            self._refuse_accept(server_sid, RejectReason.PARAMETERS,
                                f"server chose max_payload={payload}, window={window}; client allows "
                                f"{MIN_FRAME_PAYLOAD}..{self.config.max_payload} and 2..{self.config.window}")
            return
        auth = bool(flags & _FLAG_AUTH)
        if auth != (self._token is not None):
            detail = "server requires a token" if auth else "client has a token but the server does not authenticate"
            self._refuse_accept(server_sid, RejectReason.AUTH, detail)
            return
        s.peer_sid = server_sid
        s.peer_nonce = bytes(nonce)
        if auth:
            expected = self._proof(b"server", s.nonce, s.peer_nonce, s.sid, s.peer_sid)
            if not hmac.compare_digest(expected, proof):
                self._refuse_accept(server_sid, RejectReason.AUTH, "server token proof does not match")
                return
            confirm = self._proof(b"client", s.nonce, s.peer_nonce, s.sid, s.peer_sid)
        else:
            confirm = _ZERO_PROOF
        if s.hs_tries == 1:
            self._rtt_sample(s, now - s.hs_sent_at)
        s.max_payload = payload
        s.window = window
        s.rcv_next = isn
        s.peer_idle_timeout = idle_ms / 1000.0
        s.last_heard = now
        s.confirm_frame = self._frame(s, _T.CONFIRM, confirm)
        self._init_sender(s)
        self.state = State.CONFIRMING
        s.hs_tries = 0
        self._out.append((s.confirm_frame, s.peer))
        self._arm_handshake(s, now)

    def _receive_session(self, t: _T, body: memoryview, now: float) -> None:
        s = self._s
        if t is _T.DATA:
            self._on_data(s, body)
        elif t is _T.ACK:
            self._on_ack(s, body, now)
        elif t is _T.PING:
            self._out.append((self._frame(s, _T.PONG, bytes(body[:4])), s.peer))
        elif t is _T.FIN:
            if len(body) != 4:
                raise _Malformed("FIN length")
            if _unwrap(_U32.unpack(body)[0], s.rcv_next) == s.rcv_next and not s.parts:
                self._out.append((self._frame(s, _T.FIN_ACK), s.peer))
                self._end(Closed(by_peer=True))
            # else: data is still missing; the peer retransmits it and then FIN again
        elif t is _T.FIN_ACK:
            if s.fin_sent_at is not None:
                self._end(Closed(by_peer=False))

    # ------------------------------------------------------------------------------------ receiver

    def _on_data(self, s: _Session, body: memoryview) -> None:
        if len(body) < _DATA.size:
            raise _Malformed("DATA length")
        wire_seq, flags = _DATA.unpack_from(body)
        payload = body[_DATA.size:]
        if len(payload) > s.max_payload:
            raise _Malformed(f"DATA payload {len(payload)} B exceeds negotiated {s.max_payload} B")
        s.ack_pending = True
        seq = _unwrap(wire_seq, s.rcv_next)
        if seq < s.rcv_next or seq >= s.rcv_next + s.window:
            return  # duplicate (re-acked) or beyond the window we advertised
        end = bool(flags & _FLAG_END)
        if seq != s.rcv_next:
            s.ooo.setdefault(seq, (payload, end))
            return
        self._accept_in_order(s, payload, end)
        while self._s is s and s.rcv_next in s.ooo:
            payload, end = s.ooo.pop(s.rcv_next)
            self._accept_in_order(s, payload, end)

    def _accept_in_order(self, s: _Session, payload: memoryview, end: bool) -> None:
        s.rcv_next += 1
        s.parts.append(payload)
        s.parts_size += len(payload)
        if s.parts_size > self.config.max_message_size:
            self._end(ConnectionLost(f"incoming message exceeds max_message_size={self.config.max_message_size} B"))
            return
        if end:
            self._events.append(MessageReceived(parts=s.parts))
            s.parts = []
            s.parts_size = 0
            self.stats["messages_received"] += 1

    # ------------------------------------------------------------------------------------ sender

    def _init_sender(self, s: _Session) -> None:
        s.cwnd = float(min(self.config.initial_cwnd, s.window))
        s.peer_rwnd = s.window

    def _on_ack(self, s: _Session, body: memoryview, now: float) -> None:
        if len(body) < _ACK.size:
            raise _Malformed("ACK length")
        wire_cum, rwnd, n = _ACK.unpack_from(body)
        if len(body) != _ACK.size + n * _RANGE.size:
            raise _Malformed("ACK range count")
        cum = _unwrap(wire_cum, s.snd_una)
        if not s.snd_una <= cum <= s.snd_next:
            return  # acknowledges something we never sent: stale or forged
        s.peer_rwnd = min(rwnd, s.window)
        progress = False
        if cum > s.snd_una:
            progress = True
            sample_seg = None
            acked = 0
            for seq in range(s.snd_una, cum):
                seg = s.segments.pop(seq, None)
                if seg is None:
                    continue
                acked += 1
                if seg.tx_stamp > s.delivered_stamp:
                    s.delivered_stamp = seg.tx_stamp
                if seg.tx_count == 1:  # Karn: never time a retransmitted frame
                    sample_seg = seg
            s.snd_una = cum
            if sample_seg is not None:
                self._rtt_sample(s, now - sample_seg.sent_at)
            if s.recovery_until is not None and s.snd_una >= s.recovery_until:
                s.recovery_until = None
            if s.recovery_until is None:
                if s.cwnd < s.ssthresh:
                    s.cwnd += acked
                else:
                    s.cwnd += acked / s.cwnd
                s.cwnd = min(s.cwnd, float(s.window))
        off = _ACK.size
        for _ in range(n):
            a, b = _RANGE.unpack_from(body, off)
            off += _RANGE.size
            start = max(_unwrap(a, s.snd_una), s.snd_una)
            stop = min(_unwrap(b, s.snd_una), s.snd_next)
            for seq in range(start, stop):
                seg = s.segments.get(seq)
                if seg is not None and not seg.sacked:
                    seg.sacked = True
                    seg.retx_queued = False
                    progress = True
                    if seg.tx_stamp > s.delivered_stamp:
                        s.delivered_stamp = seg.tx_stamp
        if progress:
            s.timeouts = 0
            s.timer_at = now + self._rto(s) if s.segments else None
            self._detect_losses(s)

    def _detect_losses(self, s: _Session) -> None:
        threshold = s.delivered_stamp - _DUPTHRESH
        lost = False
        for seg in s.segments.values():
            if not seg.sacked and not seg.retx_queued and seg.tx_stamp <= threshold:
                seg.retx_queued = True
                s.retx.append(seg.seq)
                lost = True
        if lost and s.recovery_until is None:
            s.ssthresh = max(s.cwnd / 2, 2.0)
            s.cwnd = s.ssthresh
            s.recovery_until = s.snd_next

    def _on_rto(self, s: _Session, now: float) -> None:
        rto = self._rto(s)
        overdue = [seg for seg in s.segments.values()
                   if not seg.sacked and not seg.retx_queued and now - seg.sent_at >= rto * 0.999]
        if not overdue:
            # the timer ran from an older send; re-arm it for the oldest frame still unacknowledged
            waiting = [seg.sent_at for seg in s.segments.values() if not seg.sacked and not seg.retx_queued]
            s.timer_at = min(waiting) + rto if waiting else (now + rto if s.segments else None)
            return
        s.timeouts += 1
        self.stats["timeouts"] += 1
        if s.timeouts > self.config.max_retransmissions:
            self._end(ConnectionLost(f"no acknowledgement after {s.timeouts - 1} retransmissions "
                                     f"(max_retransmissions={self.config.max_retransmissions})"))
            return
        for seg in overdue:  # every frame unacknowledged for a whole RTO counts as lost
            seg.retx_queued = True
            s.retx.append(seg.seq)
        s.ssthresh = max(s.cwnd / 2, 2.0)
        s.cwnd = s.ssthresh
        s.timer_at = now + self._rto(s)

    def _keepalive(self, s: _Session) -> float:
        # ping often enough that the server's lease (announced in ACCEPT) never runs out while we live
        if s.peer_idle_timeout > 0:
            return min(self.config.keepalive_interval, s.peer_idle_timeout / 4)
        return self.config.keepalive_interval

    def _rto(self, s: _Session) -> float:
        cfg = self.config
        base = cfg.initial_rto if s.srtt is None else s.rto
        return min(base * (2 ** s.timeouts), cfg.max_rto)

    def _rtt_sample(self, s: _Session, rtt: float) -> None:
        rtt = max(rtt, 0.0)
        if s.srtt is None:
            s.srtt = rtt
            s.rttvar = rtt / 2
        else:
            s.rttvar = 0.75 * s.rttvar + 0.25 * abs(s.srtt - rtt)
            s.srtt = 0.875 * s.srtt + 0.125 * rtt
        s.rto = min(max(s.srtt + 4 * s.rttvar, self.config.min_rto), self.config.max_rto)

    # ------------------------------------------------------------------------------------ helpers

    def _new_session(self, peer: Hashable) -> _Session:
        raw = self._nonce_source(24)
        if len(raw) != 24:
            raise ValueError(f"nonce_source(24) returned {len(raw)} bytes")
        sid = int.from_bytes(raw[:4], "big") or 1  # 0 means "no session" on the wire
        isn = self.config.initial_sequence
        if isn is None:
            isn = int.from_bytes(raw[4:8], "big")
        return _Session(sid, bytes(raw[8:24]), isn, peer)

    def _proof(self, label: bytes, client_nonce: bytes, server_nonce: bytes, client_sid: int,
               server_sid: int) -> bytes:
        msg = b"bss2-arq-" + label + client_nonce + server_nonce + struct.pack("!II", client_sid, server_sid)
        return hmac.new(self._token, msg, hashlib.sha256).digest()

    def _end(self, event: Event) -> None:
        self._events.append(event)
        if self.role == "server":
            self._reset_server()
        else:
            self.state = State.CLOSED
            if self._s is not None:
                self._s.queue.clear()
                self._s.segments.clear()
                self._s.parts = []
                self._s.ooo.clear()

    def _reset_server(self) -> None:
        if self._s is not None:
            self._ended_sids.append(self._s.peer_sid)
        self._s = None
        self.state = State.LISTEN
