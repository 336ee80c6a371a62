"""The one narrow boundary between ``bss2.ml`` and the chip.

Every hardware-path operation of ``bss2.ml`` ends in :func:`run_matmul`. It takes integer inputs and weights that are
already rounded and range-checked and returns the chip's integer result. The process holds one backend (one executor
and one chip configuration), managed by :func:`init_hardware` / :func:`release_hardware` or the :func:`hardware`
context manager; a hardware-path call without an explicit initialisation initialises the default backend once.

:func:`run_matmul` builds the partitioned matmul graph (:func:`bss2.graph.matmul_graph`) and runs it on the
process's :class:`bss2.exec.JITExecutor`, whose per-chip configuration cache keeps unchanged weights on the chip.
The default backend is whatever ``BSS2_CONNECTION`` names, else the embedded emulator.
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
    """Acquire the process's hardware backend (one executor, one chip configuration per chip).

    :param connection: a :class:`bss2.comm.Connection`, a sequence of them (several chips), or ``None`` for the
        default backend (``BSS2_CONNECTION``, else the embedded emulator). Connections opened here are closed by
        :func:`release_hardware`; connections passed in stay open. Calling it again releases the old backend first.
    """
    global _backend
    from bss2.exec import JITExecutor

    with _lock:
        if _backend is not None:
            _log.info("re-initialising the hardware backend")
            _backend["executor"].close()
            _backend = None
        executor = JITExecutor(connection)
        name = ", ".join(f"{c.info.backend} chip {c.info.chip_id:#x}" for c in executor.connections)
        _backend = {"executor": executor, "name": name}
        _log.info("hardware initialised (backend: %s)", name)


def release_hardware() -> None:
    """Release the process's hardware backend; a no-op if none is held."""
    global _backend
    with _lock:
        if _backend is not None:
            _backend["executor"].close()
            _log.info("hardware released (backend: %s)", _backend["name"])
        _backend = None


def executor() -> Any:
    """The process's :class:`bss2.exec.JITExecutor` (initialising the default backend if needed)."""
    return _ensure_initialized()["executor"]


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
    if not 1 <= int(wait_between_events) <= 63:
        raise ValueError(f"run_matmul: wait_between_events = {wait_between_events} is out of range [1, 63] (FPGA cycles)")
    if not 1 <= int(num_sends) <= 255:
        raise ValueError(f"run_matmul: num_sends = {num_sends} is out of range [1, 255]")


def run_matmul(inputs: np.ndarray, weights: np.ndarray, num_sends: int, wait_between_events: int) -> np.ndarray:
    """Multiply on the chip.

    :param inputs: (batch, N) integers, each entry in 0..31 (events per row and send).
    :param weights: (N, M) integers, each entry in -63..63.
    :param num_sends: how often each input vector is sent (1..255); scales the result linearly.
    :param wait_between_events: FPGA cycles between successive input events (1..63).
    :returns: (batch, M) int64: the chip's result; the contraction dimension is cut into tiles of 128 rows, each
        tile's result saturates to [-128, 127], and the tiles' results are summed and saturated again.
    """
    from bss2.graph import matmul_graph

    inputs = np.asarray(inputs)
    weights = np.asarray(weights)
    _check_operands(inputs, weights, num_sends, wait_between_events)
    backend = _ensure_initialized()
    if inputs.shape[0] == 0:
        return np.zeros((0, weights.shape[1]), np.int64)
    graph, x, y = matmul_graph(weights, num_sends=int(num_sends), wait_between_events=int(wait_between_events))
    outputs, _ = backend["executor"].run(graph, {x: inputs})
    return np.asarray(outputs[y], dtype=np.int64)
