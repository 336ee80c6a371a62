"""Exceptions of the ``graph`` layer.

Every error raised by :mod:`bss2.graph` derives from :class:`GraphError` and from the builtin a caller
would expect (``ValueError`` for a bad value or a rejected edge, ``TypeError`` for a wrong type), so code
that does not know this package can still catch it.
"""

from __future__ import annotations


class GraphError(Exception):
    """Base class of every error raised by :mod:`bss2.graph`."""


class GraphValueError(GraphError, ValueError):
    """A value (vertex field, port size, slice) is out of its allowed range."""


class GraphTypeError(GraphError, TypeError):
    """An argument has the wrong type (for example a port of another connection type)."""


class EdgeError(GraphValueError):
    """An edge was rejected by :meth:`GraphBuilder.add` (arity, port, vertex pair rule)."""


class ExecutionInstanceError(GraphValueError):
    """An edge breaks the execution-instance rule (non-memory data across instances, backward or cyclic)."""


class RoutingError(GraphValueError):
    """A network does not fit on the chip; ``resource`` names what ran out."""

    def __init__(self, message: str, resource: str = "") -> None:
        super().__init__(message)
        self.resource = resource


class VerificationError(GraphValueError):
    """The connectivity realised by a routing result differs from the requested one."""


class PortTypeError(EdgeError, TypeError):
    """An edge connects ports of different connection types."""
