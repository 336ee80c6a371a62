"""Connections: one small interface, several backends, and a registry that picks one from the environment.

A :class:`Connection` executes playback programs on one chip (real, emulated or mocked) and reports how
long each stage took. :func:`run` executes a program and fills its tickets, or raises — never a partial
result. :func:`connect` chooses the backend from ``BSS2_CONNECTION``:

================================  ===========================================================================
``emulator[:SEED][:ideal]``       the in-process emulator (default; seed = the chip's serial number;
                                  ``ideal`` switches every imperfection off)
``zeromock``                      answers every read with zeros and keeps no state (software overhead)
``udp://HOST:PORT``               a remote endpoint over the reliable UDP link (``bss2-emulator serve``)
a comma-separated list            several chips, for :func:`connect_many` and the multi-chip executor
================================  ===========================================================================
"""

from __future__ import annotations

import abc
import logging
import os
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import numpy as np

from bss2.hal import PlaybackProgram, ProgramError, wire

from .errors import CommError, ProtocolError

_log = logging.getLogger("bss2.comm")

#: Version of the program/response framing spoken over the link (checked in every reply header).
PROTOCOL_VERSION = 1
ENVIRONMENT_VARIABLE = "BSS2_CONNECTION"
DEFAULT_SPEC = "emulator"


@attrs.frozen
class ConnectionInfo:
    """What a connection is attached to."""

    backend: str  #: "emulator", "zeromock" or "udp"
    chip_id: int  #: serial number of the chip (emulator seed), 0 for the zero-mock
    protocol_version: int = PROTOCOL_VERSION
    endpoint: str | None = None  #: "host:port" for remote backends


@attrs.frozen
class Timing:
    """Seconds spent per stage of one execution, plus the chip's own estimate of its hardware time."""

    encode: float = 0.0  #: turning the program into bytes for the link
    transfer: float = 0.0  #: moving bytes there and back (wall time minus remote execution)
    execute: float = 0.0  #: the chip (or emulator) executing the program, wall time
    decode: float = 0.0  #: decoding the response words (filled by :func:`run`)
    hardware_time: float = 0.0  #: the emulator's model of the time on real hardware

    @property
    def total(self) -> float:
        """Sum of the host-side stages."""
        return self.encode + self.transfer + self.execute + self.decode


@attrs.frozen
class ExecutionResult:
    """Raw response words of one program and the timing of its execution."""

    responses: np.ndarray
    timing: Timing


def _program_words(program: PlaybackProgram | np.ndarray) -> np.ndarray:
    words = program.words if isinstance(program, PlaybackProgram) else np.asarray(program)
    if words.ndim != 1 or not (words.dtype == np.uint64 or (words.size == 0 and words.dtype.kind in "iu")):
        raise CommError(f"a program must be a PlaybackProgram or a 1-D uint64 array, got {words.dtype} {words.shape}")
    return words.astype(np.uint64, copy=False)


#: guards the program counts of all connections (an increment is a few bytecodes, so one lock serves all)
_COUNT_LOCK = threading.Lock()


class Connection(abc.ABC):
    """A link to one chip. Use as a context manager, or call :meth:`close`."""

    _closed = False
    _executed = 0

    @property
    def programs_executed(self) -> int:
        """How many programs :meth:`execute` has started on this connection, by any caller (failed ones
        included). A user that remembers what it configured on the chip compares this count with the one
        after its own last program: a difference means someone else ran a program in between, and the chip
        may no longer hold what it wrote (the executor's configuration cache works this way). Programs sent
        to a remote chip by other clients of its server are not counted here."""
        return self._executed

    @property
    @abc.abstractmethod
    def info(self) -> ConnectionInfo:
        """Backend, chip id and protocol version."""

    @abc.abstractmethod
    def _execute_words(self, words: np.ndarray) -> ExecutionResult:
        """Execute instruction words, return responses and timing."""

    def _execute_parts(self, parts: tuple[np.ndarray, ...]) -> ExecutionResult:
        """Execute the concatenation of ``parts`` (two or more); backends that can use the parts as they are
        (without joining them into one array) override this."""
        return self._execute_words(np.concatenate(parts))

    def _hooks_words(self, backend: type[Connection]) -> bool:
        """Whether this object's class overrides ``backend._execute_words``: such a subclass sees (or
        changes) the words of every program, so programs in parts reach it joined."""
        return type(self)._execute_words is not backend._execute_words

    def execute(self, program: PlaybackProgram | np.ndarray | Sequence[np.ndarray]) -> ExecutionResult:
        """Execute a program (or raw instruction words) and return the raw responses with timing.

        The words may also come as a list or tuple of 1-D uint64 arrays, the program in parts (for example
        a cached block of configuration words, then the vectors of this run): it runs as their
        concatenation, and a backend that can take the parts as they are spares the copy.
        """
        if self._closed:
            raise CommError(f"{type(self).__name__} is closed")
        with _COUNT_LOCK:
            self._executed += 1
        if isinstance(program, (list, tuple)):
            parts = tuple(_program_words(part) for part in program)
            nonempty = tuple(part for part in parts if part.size)
            if len(nonempty) > 1:
                return self._execute_parts(nonempty)
            return self._execute_words(nonempty[0] if nonempty else np.empty(0, np.uint64))
        return self._execute_words(_program_words(program))

    def close(self) -> None:
        """Release the chip."""
        self._closed = True

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        info = self.info
        where = f" at {info.endpoint}" if info.endpoint else ""
        return f"{type(self).__name__}(chip {info.chip_id:#x}{where})"


def run(connection: Connection, program: PlaybackProgram) -> ExecutionResult:
    """Execute ``program`` on ``connection`` and fill its tickets.

    Raises :class:`~bss2.hal.ProgramError` if the responses are incomplete or report chip errors (the
    tickets stay unready), or the connection's :class:`~bss2.comm.CommError` if the link failed.
    """
    result = connection.execute(program)
    start = time.perf_counter()
    responses = wire.decode_responses(result.responses)
    program.deliver(responses)
    decode = time.perf_counter() - start
    return attrs.evolve(result, timing=attrs.evolve(result.timing, decode=decode))


# ------------------------------------------------------------------------------------------- backends


class EmulatorConnection(Connection):
    """The in-process chip emulator (the default backend)."""

    def __init__(self, seed: int = 0, config: Any = None, emulator: Any = None) -> None:
        from bss2.hal.emulator import Emulator  # imported on demand: bss2.hal stays light

        self.emulator = emulator if emulator is not None else Emulator(seed=seed, config=config)

    @property
    def info(self) -> ConnectionInfo:
        return ConnectionInfo(backend="emulator", chip_id=int(self.emulator.chip_id))

    def _execute_words(self, words: np.ndarray) -> ExecutionResult:
        start = time.perf_counter()
        responses = self.emulator.execute(words)
        elapsed = time.perf_counter() - start
        return ExecutionResult(responses, Timing(execute=elapsed, hardware_time=float(self.emulator.hardware_time)))

    def _execute_parts(self, parts: tuple[np.ndarray, ...]) -> ExecutionResult:
        if self._hooks_words(EmulatorConnection):
            return super()._execute_parts(parts)
        start = time.perf_counter()
        responses = self.emulator.execute_parts(parts)
        elapsed = time.perf_counter() - start
        return ExecutionResult(responses, Timing(execute=elapsed, hardware_time=float(self.emulator.hardware_time)))


#: The zero-mock models the FPGA taking one 8 ns cycle per word (like the original stack's zero-mock).
ZEROMOCK_SECONDS_PER_WORD = 8e-9


def zero_responses(words: np.ndarray) -> np.ndarray:
    """Responses of a chip whose every register reads zero: one per read, blocks of zeros, END echoes."""
    words = np.asarray(words)
    if words.ndim == 1 and words.dtype == np.uint64:
        return _zero_responses_of_answering(words)
    return _zero_responses_general(words)


def _zero_responses_of_answering(words: np.ndarray) -> np.ndarray:
    """:func:`zero_responses` looking only at the instructions that answer (READ, READ_BLOCK, END): block
    data words are found with :func:`wire.block_payload_mask`, nothing else of the stream is decoded.

    Leading WRITE_BLOCKs (a configuration or weight update in front of the program) are skipped by
    walking their headers, a step per block rather than a look at each of their data words.
    """
    start, n = 0, words.size
    for _ in range(_LEADING_BLOCKS):
        if start >= n:
            break
        header = int(words[start])
        if header >> 56 != _WRITE_BLOCK:
            break
        start += 1 + ((header & 0xFFFF) + 1) // 2
    if start:
        words = words[start:]
    opcodes = wire.opcodes_of(words)
    kind = _ANSWER_KIND[opcodes]  # response type of each answering instruction, 0 for the others
    index = np.flatnonzero(kind)
    candidates = np.flatnonzero(opcodes == _WRITE_BLOCK)
    if candidates.size:
        index = index[~_inside_blocks(words, candidates, index)]
    kinds = kind[index]
    payload = words[index]
    blocks = kinds == _BLOCK_DATA
    counts = np.where(blocks, (payload & _MASK16).astype(np.int64), 0)
    sizes = 1 + (counts + 1) // 2
    offsets = np.cumsum(sizes) - sizes
    out = np.zeros(int(offsets[-1] + sizes[-1]) if sizes.size else 0, np.uint64)
    # the answer keeps the address (bits 55..32) of reads, the address and count of blocks, the END cookie
    out[offsets] = (kinds.astype(np.uint64) << np.uint64(56)) | (payload & _KEEP[kinds])
    return out


_WRITE_BLOCK = int(wire.Opcode.WRITE_BLOCK)
_BLOCK_DATA = np.uint8(wire.ResponseType.BLOCK_DATA)
_MASK16 = np.uint64(0xFFFF)
#: WRITE_BLOCKs at the start of a program that :func:`_zero_responses_of_answering` walks one by one.
_LEADING_BLOCKS = 16
_ANSWER_KIND = np.zeros(256, np.uint8)
_ANSWER_KIND[int(wire.Opcode.READ)] = int(wire.ResponseType.READ_DATA)
_ANSWER_KIND[int(wire.Opcode.READ_BLOCK)] = int(wire.ResponseType.BLOCK_DATA)
_ANSWER_KIND[int(wire.Opcode.END)] = int(wire.ResponseType.END)
_KEEP = np.zeros(256, np.uint64)
_KEEP[int(wire.ResponseType.READ_DATA)] = 0x00FF_FFFF_0000_0000
_KEEP[int(wire.ResponseType.BLOCK_DATA)] = 0x00FF_FFFF_0000_FFFF
_KEEP[int(wire.ResponseType.END)] = 0xFFFF_FFFF


def _inside_blocks(words: np.ndarray, candidates: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Which of the (sorted) word positions ``index`` are data words of a WRITE_BLOCK.

    The real headers among the ``candidates`` are found like :func:`wire.block_payload_mask` does (a
    candidate inside the data of an earlier real header is data itself); membership is then a binary
    search per position instead of a mask over the whole stream.
    """
    headers, _, ends = wire.real_block_headers(words, candidates)
    block = np.searchsorted(headers, index, side="left") - 1  # the last header before each position
    inside = block >= 0
    inside[inside] = index[inside] < ends[block[inside]]
    return inside


def _zero_responses_general(words: np.ndarray) -> np.ndarray:
    stream = wire.decode_instructions(words)
    opcode = stream.opcode
    reads = opcode == wire.Opcode.READ
    blocks = opcode == wire.Opcode.READ_BLOCK
    ends = opcode == wire.Opcode.END
    if not blocks.any():
        out = np.zeros(int(np.count_nonzero(reads | ends)), np.uint64)
        kind = np.where(reads[reads | ends], np.uint64(wire.ResponseType.READ_DATA), np.uint64(wire.ResponseType.END))
        payload = stream.payload[reads | ends]
        keep = np.where(reads[reads | ends], payload & np.uint64(0x00FF_FFFF_0000_0000), payload & np.uint64(0xFFFF_FFFF))
        out[:] = (kind << np.uint64(56)) | keep
        return out
    # general case: each answering instruction yields 1 word (+ ceil(n/2) data words for blocks)
    answering = reads | blocks | ends
    payload = stream.payload[answering]
    kinds = opcode[answering]
    counts = np.where(kinds == wire.Opcode.READ_BLOCK, (payload & np.uint64(0xFFFF)).astype(np.int64), 0)
    sizes = 1 + (counts + 1) // 2
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    out = np.zeros(int(sizes.sum()), np.uint64)
    response_kind = np.select(
        [kinds == wire.Opcode.READ, kinds == wire.Opcode.READ_BLOCK],
        [wire.ResponseType.READ_DATA, wire.ResponseType.BLOCK_DATA],
        wire.ResponseType.END,
    ).astype(np.uint64)
    body = np.where(kinds == wire.Opcode.END, payload & np.uint64(0xFFFF_FFFF), payload & np.uint64(0x00FF_FFFF_0000_FFFF))
    body = np.where(kinds == wire.Opcode.READ, payload & np.uint64(0x00FF_FFFF_0000_0000), body)
    out[offsets] = (response_kind << np.uint64(56)) | body
    return out


class ZeroMockConnection(Connection):
    """Answers every read with zeros and keeps no state: measures pure software overhead.

    Its hardware time models the FPGA consuming one word per 8 ns cycle.
    """

    @property
    def info(self) -> ConnectionInfo:
        return ConnectionInfo(backend="zeromock", chip_id=0)

    def _execute_words(self, words: np.ndarray) -> ExecutionResult:
        start = time.perf_counter()
        responses = zero_responses(words)
        elapsed = time.perf_counter() - start
        return ExecutionResult(responses, Timing(execute=elapsed, hardware_time=words.size * ZEROMOCK_SECONDS_PER_WORD))


# ---------------------------------------------------------------------- framing of programs on the link

_REQUEST = struct.Struct("<4sHH")  # magic, protocol version, kind
_REPLY = struct.Struct("<4sHHIdd")  # magic, protocol version, status, chip id, hardware time, execute time
REQUEST_MAGIC = b"BSP2"
REPLY_MAGIC = b"BSR2"
KIND_PROGRAM = 1
KIND_INFO = 2
STATUS_OK = 0
STATUS_ERROR = 1


def encode_request(words: np.ndarray | Sequence[np.ndarray] | None, kind: int = KIND_PROGRAM) -> bytes:
    """Frame a program (or an info request) for the link; a program in parts is framed as their concatenation."""
    header = _REQUEST.pack(REQUEST_MAGIC, PROTOCOL_VERSION, kind)
    if words is None:
        return header
    if isinstance(words, (list, tuple)):
        return b"".join([header, *(np.ascontiguousarray(part, dtype="<u8").tobytes() for part in words)])
    return header + np.ascontiguousarray(words, dtype="<u8").tobytes()


def decode_reply(payload: bytes) -> tuple[np.ndarray, int, float, float]:
    """Parse a reply: ``(responses, chip_id, hardware_time, execute_time)``; raises on errors."""
    if len(payload) < _REPLY.size:
        raise ProtocolError(f"reply of {len(payload)} bytes is shorter than its {_REPLY.size}-byte header")
    magic, version, status, chip_id, hardware_time, execute_time = _REPLY.unpack_from(payload)
    if magic != REPLY_MAGIC or version != PROTOCOL_VERSION:
        raise ProtocolError(f"unexpected reply header (magic {magic!r}, version {version}; expected {REPLY_MAGIC!r}, {PROTOCOL_VERSION})")
    body = payload[_REPLY.size :]
    if status != STATUS_OK:
        raise CommError(f"the remote endpoint failed: {body.decode('utf-8', 'replace')}")
    if len(body) % 8:
        raise ProtocolError(f"reply body of {len(body)} bytes is not a whole number of 64-bit words")
    return np.frombuffer(body, dtype="<u8").astype(np.uint64), chip_id, hardware_time, execute_time


def encode_reply(responses: np.ndarray | None, chip_id: int, hardware_time: float, execute_time: float, error: str | None = None) -> bytes:
    """Frame a reply (used by the server)."""
    status = STATUS_OK if error is None else STATUS_ERROR
    header = _REPLY.pack(REPLY_MAGIC, PROTOCOL_VERSION, status, chip_id & 0xFFFF_FFFF, hardware_time, execute_time)
    if error is not None:
        return header + error.encode("utf-8")
    assert responses is not None
    return header + np.ascontiguousarray(responses, dtype="<u8").tobytes()


def handle_request(emulator: Any, request: bytes) -> bytes:
    """Serve one framed request with ``emulator`` (never raises: errors become error replies)."""
    chip_id = int(emulator.chip_id)
    try:
        if len(request) < _REQUEST.size:
            raise ProtocolError(f"request of {len(request)} bytes is shorter than its header")
        magic, version, kind = _REQUEST.unpack_from(request)
        if magic != REQUEST_MAGIC or version != PROTOCOL_VERSION:
            raise ProtocolError(f"unexpected request header (magic {magic!r}, version {version})")
        if kind == KIND_INFO:
            return encode_reply(np.empty(0, np.uint64), chip_id, 0.0, 0.0)
        if kind != KIND_PROGRAM:
            raise ProtocolError(f"unknown request kind {kind}")
        body = request[_REQUEST.size :]
        if len(body) % 8:
            raise ProtocolError(f"program of {len(body)} bytes is not a whole number of 64-bit words")
        words = np.frombuffer(body, dtype="<u8").astype(np.uint64)
        start = time.perf_counter()
        responses = emulator.execute(words)
        elapsed = time.perf_counter() - start
        return encode_reply(responses, chip_id, float(emulator.hardware_time), elapsed)
    except Exception as error:  # the server must survive anything a client sends
        _log.debug("request rejected: %s", error)
        return encode_reply(None, chip_id, 0.0, 0.0, error=f"{type(error).__name__}: {error}")


class UdpConnection(Connection):
    """A remote chip behind the reliable UDP link (for example ``bss2-emulator serve``).

    ``token`` defaults to the ``BSS2_TOKEN`` environment variable; ``timeout`` (s) bounds every program.
    Raises :class:`~bss2.comm.ChipBusy` when another client holds the chip.
    """

    def __init__(self, host: str, port: int, token: str | bytes | None = None, timeout: float = 60.0, connect_timeout: float = 5.0) -> None:
        from .udp import UdpLink

        if token is None:
            token = os.environ.get("BSS2_TOKEN") or None
        self.endpoint = f"{host}:{port}"
        self._link = UdpLink(host, port, token=token, timeout=timeout, connect_timeout=connect_timeout)
        _, self._chip_id, _, _ = decode_reply(self._link.request(encode_request(None, KIND_INFO)))

    @property
    def info(self) -> ConnectionInfo:
        return ConnectionInfo(backend="udp", chip_id=self._chip_id, endpoint=self.endpoint)

    def _execute_parts(self, parts: tuple[np.ndarray, ...]) -> ExecutionResult:
        if self._hooks_words(UdpConnection):
            return super()._execute_parts(parts)
        return self._request(parts)  # framed part by part, not joined first

    def _execute_words(self, words: np.ndarray) -> ExecutionResult:
        return self._request(words)

    def _request(self, words: np.ndarray | tuple[np.ndarray, ...]) -> ExecutionResult:
        start = time.perf_counter()
        request = encode_request(words)
        encoded = time.perf_counter()
        reply = self._link.request(request)
        received = time.perf_counter()
        responses, _, hardware_time, execute_time = decode_reply(reply)
        parsed = time.perf_counter()
        return ExecutionResult(
            responses,
            Timing(
                encode=(encoded - start) + (parsed - received),
                transfer=max(received - encoded - execute_time, 0.0),
                execute=execute_time,
                hardware_time=hardware_time,
            ),
        )

    def close(self) -> None:
        if not self._closed:
            self._link.close()
        super().close()


# ------------------------------------------------------------------------------------------- registry


def _parse_one(spec: str, index: int) -> Connection:
    spec = spec.strip()
    if spec == "zeromock":
        return ZeroMockConnection()
    if spec == "emulator" or spec.startswith("emulator:"):
        options = [o for o in spec.split(":")[1:] if o]
        ideal = "ideal" in options
        seed_texts = [o for o in options if o != "ideal"]
        if len(seed_texts) > 1:
            raise CommError(f"{ENVIRONMENT_VARIABLE}: {spec!r} has more than one seed; use emulator[:SEED][:ideal]")
        try:
            seed = int(seed_texts[0], 0) if seed_texts else index
        except ValueError:
            raise CommError(f"{ENVIRONMENT_VARIABLE}: emulator seed {seed_texts[0]!r} is not an integer") from None
        config = None
        if ideal:
            from bss2.hal.emulator import EmulatorConfig

            config = EmulatorConfig.ideal()
        return EmulatorConnection(seed=seed, config=config)
    if spec.startswith("udp://"):
        parts = urlsplit(spec)
        if not parts.hostname or parts.port is None:
            raise CommError(f"{ENVIRONMENT_VARIABLE}: {spec!r} needs a host and a port (udp://host:port)")
        return UdpConnection(parts.hostname, parts.port)
    raise CommError(
        f"{ENVIRONMENT_VARIABLE}={spec!r} is not a known backend; use 'emulator[:seed][:ideal]', 'zeromock', "
        "'udp://host:port' or a comma-separated list of those"
    )


def _specs(spec: str | None) -> list[str]:
    text = spec if spec is not None else os.environ.get(ENVIRONMENT_VARIABLE, "").strip() or DEFAULT_SPEC
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise CommError(f"{ENVIRONMENT_VARIABLE} is empty")
    return parts


def connect_many(spec: str | None = None) -> list[Connection]:
    """One connection per endpoint of ``spec`` (default: ``BSS2_CONNECTION``, else the emulator).

    Emulators in a list get distinct serial numbers (their position) unless a seed is given.
    """
    connections: list[Connection] = []
    try:
        for index, part in enumerate(_specs(spec)):
            connections.append(_parse_one(part, index))
    except BaseException:
        for connection in connections:
            connection.close()
        raise
    return connections


def connect(spec: str | None = None) -> Connection:
    """The connection selected by ``spec`` / ``BSS2_CONNECTION`` (the in-process emulator by default)."""
    parts = _specs(spec)
    if len(parts) > 1:
        raise CommError(f"{ENVIRONMENT_VARIABLE} lists {len(parts)} endpoints; use connect_many() for several chips")
    if spec is None and ENVIRONMENT_VARIABLE not in os.environ:
        _log.info("no %s set: using the in-process emulator", ENVIRONMENT_VARIABLE)
    return _parse_one(parts[0], 0)


def close_all(connections: Sequence[Connection]) -> None:
    """Close several connections (errors are logged, not raised)."""
    for connection in connections:
        try:
            connection.close()
        except Exception as error:  # closing must not mask the original problem
            _log.warning("closing %r failed: %s", connection, error)


__all__ = [
    "Connection",
    "ConnectionInfo",
    "EmulatorConnection",
    "ExecutionResult",
    "ProgramError",
    "Timing",
    "UdpConnection",
    "ZeroMockConnection",
    "connect",
    "connect_many",
    "run",
]
