"""The per-chip configuration cache: only changed words are sent; CapMem changes add the settling wait."""

from __future__ import annotations

import numpy as np

from bss2.comm import EmulatorConnection
from bss2.exec import JITExecutor
from bss2.graph import matmul_graph
from bss2.hal import hagen, wire
from bss2.hal.emulator import EmulatorConfig

from .conftest import exact_matmul


class Recording(EmulatorConnection):
    """Keeps the instruction words of every program."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.programs = []

    def _execute_words(self, words):
        self.programs.append(words.copy())
        return super()._execute_words(words)


def _weight_words(words: np.ndarray) -> int:
    """Register words written into the synapse weight planes."""
    stream = wire.decode_instructions(words)
    base = 0x10000
    single = (stream.opcode == wire.Opcode.WRITE) & (stream.addresses >= base) & (stream.addresses < base + 32768)
    count = int(np.count_nonzero(single))
    for header, n in zip(stream.block_headers.tolist(), stream.block_counts.tolist()):
        start = (int(stream.words[header]) >> 32) & 0xFFFFFF
        count += max(0, min(start + n, base + 32768) - max(start, base))
    return count


def _has_settling_wait(words: np.ndarray) -> bool:
    stream = wire.decode_instructions(words)
    waits = stream.low32[stream.opcode == wire.Opcode.WAIT_UNTIL]
    return bool((waits >= hagen.CAPMEM_SETTLE_CYCLES).any())


def test_repeated_run_sends_no_configuration():
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    rng = np.random.default_rng(0)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (10, 128))
    graph, x_in, y_out = matmul_graph(w)
    _, first = executor.run(graph, {x_in: x})
    out, second = executor.run(graph, {x_in: x})
    assert first.config_words > 0 and second.config_words == 0
    assert _weight_words(connection.programs[0]) > 0 and _weight_words(connection.programs[1]) == 0
    assert _has_settling_wait(connection.programs[0]) and not _has_settling_wait(connection.programs[1])
    assert np.array_equal(out[y_out], exact_matmul(x, w))


def test_weight_change_sends_only_weight_words_and_no_settling():
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    rng = np.random.default_rng(1)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (10, 128))
    graph, x_in, _ = matmul_graph(w)
    executor.run(graph, {x_in: x})
    w2 = w.copy()
    w2[5, :10] = -w2[5, :10] + 1  # change a few weights
    graph2, x_in2, y_out2 = matmul_graph(w2)
    out, info = executor.run(graph2, {x_in2: x})
    changed_words = info.config_words
    assert 0 < changed_words <= 2 * 64  # both physical rows of input 5, at most all their quads
    assert not _has_settling_wait(connection.programs[-1])
    assert np.array_equal(out[y_out2], exact_matmul(x, w2))


def test_capmem_change_adds_the_settling_wait():
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    graph, x_in, _ = matmul_graph(np.ones((10, 10), int))
    executor.run(graph, {x_in: np.ones((2, 10), int)})
    executor.run(graph, {x_in: np.ones((2, 10), int)})
    assert not _has_settling_wait(connection.programs[-1])
    executor.invalidate_cache()  # unknown chip state: reset + full configuration, CapMem included
    executor.run(graph, {x_in: np.ones((2, 10), int)})
    assert _has_settling_wait(connection.programs[-1])
