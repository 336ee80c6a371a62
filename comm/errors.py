"""Exceptions of the ``bss2.comm`` layer.

Every error derives from :class:`CommError` and from the matching builtin, so callers that only know the
standard library (``except ConnectionError``, ``except TimeoutError``) still catch them.
"""

from __future__ import annotations

__all__ = ["CommError", "ConnectionLost", "ChipBusy", "HandshakeError", "CommTimeoutError", "ProtocolError"]


class CommError(Exception):
    """Base class of all errors raised by ``bss2.comm``."""


class ConnectionLost(CommError, ConnectionError):
    """The session with the peer ended before the exchange completed.

    Raised when retransmissions are exhausted, the peer stays silent past the idle timeout, the peer resets
    the session (e.g. it restarted), or the link is used after it was closed. No partial message is ever
    handed up alongside this error.
    """


class ChipBusy(CommError, ConnectionRefusedError):
    """The server already serves another client (one session per chip at a time)."""


class HandshakeError(CommError, ConnectionError):
    """The handshake was rejected: protocol version, negotiated parameters or authentication token differ."""


class CommTimeoutError(CommError, TimeoutError):
    """No complete reply arrived within the caller's timeout."""


class ProtocolError(CommError, ValueError):
    """A message on the link is malformed (wrong framing, version or size)."""
