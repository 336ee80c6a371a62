"""Fixtures of the executor suite: ideal and default emulated chips, an exact reference."""

from __future__ import annotations

import numpy as np
import pytest

from bss2.comm import EmulatorConnection, ZeroMockConnection
from bss2.exec import JITExecutor
from bss2.hal.emulator import EmulatorConfig

GAIN = 0.002  # the ideal emulator's gain with nominal CapMem (CHIP.md)


def exact_matmul(x: np.ndarray, w: np.ndarray, num_sends: int = 1) -> np.ndarray:
    """The documented chip arithmetic: per 128-row tile floor(gain * num_sends * x @ W) clipped to int8,
    tiles summed and clipped once more."""
    total = np.zeros((x.shape[0], w.shape[1]), np.int64)
    for r0 in range(0, w.shape[0], 128):
        partial = np.floor(GAIN * num_sends * (x[:, r0 : r0 + 128].astype(np.int64) @ w[r0 : r0 + 128].astype(np.int64)))
        total += np.clip(partial, -128, 127).astype(np.int64)
    return np.clip(total, -128, 127)


@pytest.fixture
def ideal_executor():
    executors = []

    def make(n_chips: int = 1, seed: int = 0) -> JITExecutor:
        connections = [EmulatorConnection(seed=seed + i, config=EmulatorConfig.ideal()) for i in range(n_chips)]
        executor = JITExecutor(connections)
        executors.append(executor)
        return executor

    yield make
    for executor in executors:
        executor.close()


@pytest.fixture
def zeromock_executor():
    executor = JITExecutor(ZeroMockConnection())
    yield executor
    executor.close()
