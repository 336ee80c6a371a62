"""The one narrow boundary between ``bss2.ml`` and the chip.

Every hardware-path operation of ``bss2.ml`` ends in :func:`run_matmul`. It takes integer inputs and weights that are
already rounded and range-checked and returns the chip's integer result. The process holds one backend (one executor
and one chip configuration), managed by :func:`init_hardware` / :func:`release_hardware` or the :func:`hardware`
context manager; a hardware-path call without an explicit initialisation initialises the default backend once.

.. note::
   Until the executor is wired in, :func:`run_matmul` is a **temporary ideal stand-in**: it computes the ideal chip
   arithmetic in numpy (what the ideal emulator computes). Only this module changes when the executor is connected.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

_log = logging.getLogger("bss2.ml")

#: Inputs are 5-bit unsigned activations (number of events per row and send).
INPUT_MIN, INPUT_MAX = 0, 31
#: Weights are 6-bit magnitudes with a sign (a row pair per signed row).
WEIGHT_MIN, WEIGHT_MAX = -63, 63
#: Outputs are the CADC reading relative to the reset level, as a signed 8-bit value.
OUTPUT_MIN, OUTPUT_MAX = -128, 127
#: Signed rows of one synapse array (a tile of the contraction dimension).
ARRAY_ROWS = 128
#: Neuron columns of one synapse array.
ARRAY_COLUMNS = 256
#: Gain of the ideal chip in LSB per (input unit x weight unit) and send: exactly 1 / 500.
IDEAL_GAIN = 0.002
_IDEAL_GAIN_DENOMINATOR = 500

_lock = threading.RLock()  # re-entrant: the implicit initialisation calls init_hardware under it
_backend: dict[str, Any] | None = None


def is_initialized() -> bool:
    """Whether this process currently holds a hardware backend."""
    return _backend is not None


def init_hardware(connection: Any = None) -> None:
    """Acquire the process's hardware backend (one executor, one chip configuration).

    :param connection: a connection object, or ``None`` for the default backend (the embedded emulator once the
        executor is wired in). Calling it again while initialised releases the old backend first.
    """
    global _backend
    with _lock:
        if _backend is not None:
            _log.info("re-initialising the hardware backend")
        # Provisional: the executor will be created on ``connection`` here.
        name = "ideal stand-in" if connection is None else type(connection).__name__
        _backend = {"connection": connection, "name": name}
        _log.info("hardware initialised (backend: %s)", name)


def release_hardware() -> None:
    """Release the process's hardware backend; a no-op if none is held."""
    global _backend
    with _lock:
        if _backend is not None:
            _log.info("hardware released (backend: %s)", _backend["name"])
        _backend = None


@contextlib.contextmanager
def hardware(connection: Any = None) -> Iterator[None]:
    """Context manager: :func:`init_hardware` on entry, :func:`release_hardware` on exit."""
    init_hardware(connection)
    try:
        yield
    finally:
        release_hardware()


def _ensure_initialized() -> dict[str, Any]:
    with _lock:
        if _backend is None:
            _log.info("hardware path used without init_hardware(); initialising the default backend")
            init_hardware()
        assert _backend is not None
        return _backend


def _check_operands(inputs: np.ndarray, weights: np.ndarray, num_sends: int, wait_between_events: int) -> None:
    if inputs.ndim != 2 or weights.ndim != 2 or inputs.shape[1] != weights.shape[0]:
        raise ValueError(f"run_matmul: shapes {inputs.shape} and {weights.shape} do not form (batch, N) @ (N, M)")
    if not (np.issubdtype(inputs.dtype, np.integer) and np.issubdtype(weights.dtype, np.integer)):
        raise TypeError(f"run_matmul: inputs and weights must be integer arrays, got {inputs.dtype}, {weights.dtype}")
    if inputs.size and (inputs.min() < INPUT_MIN or inputs.max() > INPUT_MAX):
        raise OverflowError(f"run_matmul: inputs outside {INPUT_MIN}..{INPUT_MAX}")
    if weights.size and (weights.min() < WEIGHT_MIN or weights.max() > WEIGHT_MAX):
        raise OverflowError(f"run_matmul: weights outside {WEIGHT_MIN}..{WEIGHT_MAX}")
    if int(num_sends) < 1:
        raise ValueError(f"run_matmul: num_sends must be >= 1, got {num_sends}")
    if int(wait_between_events) < 0:
        raise ValueError(f"run_matmul: wait_between_events must be >= 0 (FPGA cycles), got {wait_between_events}")


def run_matmul(inputs: np.ndarray, weights: np.ndarray, num_sends: int, wait_between_events: int) -> np.ndarray:
    """Multiply on the chip.

    :param inputs: (batch, N) int64, each entry in 0..31 (events per row and send).
    :param weights: (N, M) int64, each entry in -63..63.
    :param num_sends: how often each input vector is sent (>= 1); scales the result linearly.
    :param wait_between_events: FPGA cycles between successive input events (>= 0).
    :returns: (batch, M) int64: the chip's result; the contraction dimension is cut into tiles of 128 rows, each
        tile's result saturates to [-128, 127], and the tiles' results are summed and saturated again.

    .. warning::
       **Temporary ideal stand-in** until the lead wires in the executor: computes, per 128-row tile,
       ``floor(0.002 * num_sends * x @ W)`` clipped to [-128, 127], tiles summed and clipped again — exactly the
       ideal emulator's arithmetic. ``wait_between_events`` has no effect on the ideal arithmetic.
    """
    inputs = np.asarray(inputs)
    weights = np.asarray(weights)
    _check_operands(inputs, weights, num_sends, wait_between_events)
    _ensure_initialized()
    batch, rows = inputs.shape
    columns = weights.shape[1]
    tiles = max(1, -(-rows // ARRAY_ROWS))
    padded = tiles * ARRAY_ROWS
    # Float64 holds every partial sum exactly (|sum| <= 128 * 31 * 63 < 2**53); BLAS makes it fast.
    x = np.zeros((batch, padded), dtype=np.float64)
    x[:, :rows] = inputs
    w = np.zeros((padded, columns), dtype=np.float64)
    w[:rows] = weights
    per_tile = np.matmul(x.reshape(batch, tiles, ARRAY_ROWS).transpose(1, 0, 2), w.reshape(tiles, ARRAY_ROWS, columns))
    # Integer floor division: floor(0.002 * num_sends * acc) without a float rounding step at exact multiples.
    scaled = np.floor_divide(per_tile.astype(np.int64) * int(num_sends), _IDEAL_GAIN_DENOMINATOR)
    np.clip(scaled, OUTPUT_MIN, OUTPUT_MAX, out=scaled)
    total = scaled.sum(axis=0)
    np.clip(total, OUTPUT_MIN, OUTPUT_MAX, out=total)
    return total
