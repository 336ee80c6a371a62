"""Exceptions of the ``hal`` layer.

Every error raised by :mod:`bss2.hal` derives from :class:`HalError` and from the builtin exception a
caller would expect (``ValueError`` for a bad value, ``IndexError`` for an out-of-range coordinate,
``TypeError`` for a wrong type), so ``except ValueError`` keeps working for code that does not know
this package.
"""

from __future__ import annotations


class HalError(Exception):
    """Base class of every error raised by :mod:`bss2.hal`."""


class HalValueError(HalError, ValueError):
    """A value is out of its allowed range or malformed."""


class CoordinateRangeError(HalError, IndexError, ValueError):
    """A coordinate was constructed with a value outside its range."""


class HalTypeError(HalError, TypeError):
    """An argument has the wrong type (for example a coordinate of another kind)."""


class EncodingError(HalValueError):
    """A word stream cannot be encoded or decoded (malformed words, truncated blocks)."""


class TicketNotReadyError(HalError, RuntimeError):
    """A ticket was read before the program holding it has been executed."""


class ReadOnlyError(HalValueError):
    """A write was requested for a read-only register."""


def describe_range(low: int | float, high: int | float) -> str:
    """Format an inclusive range for error messages."""
    return f"[{low}, {high}]"
