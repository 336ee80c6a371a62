"""``bss2.comm`` — connections to a chip.

:func:`connect` returns a :class:`Connection` to the backend named by ``BSS2_CONNECTION`` (the in-process
emulator by default); :func:`run` executes a playback program on it and fills the program's tickets.
The reliable UDP link is a sans-IO protocol core (:mod:`bss2.comm.arq`) driven by thin socket loops
(:mod:`bss2.comm.udp`); ``bss2-emulator serve`` puts an emulator behind it (:mod:`bss2.comm.server`).
"""

from .arq import ArqConfig
from .connection import (
    Connection,
    ConnectionInfo,
    EmulatorConnection,
    ExecutionResult,
    Timing,
    UdpConnection,
    ZeroMockConnection,
    close_all,
    connect,
    connect_many,
    run,
)
from .errors import ChipBusy, CommError, CommTimeoutError, ConnectionLost, HandshakeError, ProtocolError
from .udp import UdpLink, UdpServer, serve_udp

__all__ = [
    "ArqConfig",
    "ChipBusy",
    "CommError",
    "CommTimeoutError",
    "Connection",
    "ConnectionInfo",
    "ConnectionLost",
    "EmulatorConnection",
    "ExecutionResult",
    "HandshakeError",
    "ProtocolError",
    "Timing",
    "UdpConnection",
    "UdpLink",
    "UdpServer",
    "ZeroMockConnection",
    "close_all",
    "connect",
    "connect_many",
    "run",
    "serve_udp",
]
