"""Added by the lead: programs with a configuration prefix followed by canonical MAC vectors.

The executor sends the differential configuration and the input vectors in one program. The result must
equal the general interpreter's (fast path off) bit for bit on the ideal chip, and in distribution on the
default chip.
"""

import numpy as np

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig


def _program(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (64, 128))
    x[5] = 0
    words = np.concatenate([wire.encode_write([1], [1]), hagen.hagen_config_words({0: w, 1: -w}),
                            hagen.hagen_input_words({0: x, 1: x}, end_cookie=3)])
    return words, w, x


def _run(words: np.ndarray, config: EmulatorConfig, fast: bool) -> np.ndarray:
    emulator = Emulator(seed=5, config=config)
    emulator.fast_path = fast
    return emulator.execute(words), emulator.hardware_time


def test_prefix_plus_vectors_equal_the_general_interpreter_on_the_ideal_chip():
    words, w, x = _program(0)
    fast, fast_time = _run(words, EmulatorConfig.ideal(), True)
    general, general_time = _run(words, EmulatorConfig.ideal(), False)
    assert np.array_equal(fast, general)
    assert fast_time == general_time
    y = hagen.decode_hagen_responses(fast, [0, 1], 64)
    assert np.array_equal(y[0], np.clip(np.floor(0.002 * (x @ w)), -128, 127))


def test_prefix_plus_vectors_match_the_general_interpreter_in_distribution():
    words, _, _ = _program(1)
    fast = hagen.decode_hagen_responses(_run(words, EmulatorConfig.default(), True)[0], [0, 1], 64)
    general = hagen.decode_hagen_responses(_run(words, EmulatorConfig.default(), False)[0], [0, 1], 64)
    for synram in (0, 1):
        difference = fast[synram].astype(float) - general[synram].astype(float)
        assert abs(difference.mean()) < 0.5 and difference.std() < 4.5  # two independent noise draws of ~2 LSB


def test_weight_updates_before_vectors_equal_the_general_interpreter():
    """The executor's typical program: only synapse writes (blocks and single words), then the vectors."""
    rng = np.random.default_rng(2)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (32, 128))
    setup = np.concatenate([hagen.hagen_config_words({0: w, 1: w}), wire.encode_end(1)])
    update = np.concatenate([
        hagen.hagen_synapse_words(0, rng.integers(-63, 64, (128, 256))),
        wire.encode_write([0x10000 + 5, 0x10000 + 5, 0x10000 + 16384 + 7], rng.integers(0, 2**32, 3)),
        hagen.hagen_input_words({0: x, 1: x}, end_cookie=4),
    ])
    results = []
    for fast in (True, False):
        for config in (EmulatorConfig.ideal(), EmulatorConfig.default().evolve(noise_lsb=0.0)):
            emulator = Emulator(seed=9, config=config)
            emulator.fast_path = fast
            emulator.execute(setup)
            responses = emulator.execute(update)
            results.append((responses, emulator.time, emulator.memory.copy()))
    for k in (0, 1):  # ideal, noise-free default: fast == general bit for bit
        fast_result, general_result = results[k], results[2 + k]
        assert np.array_equal(fast_result[0], general_result[0])
        assert fast_result[1] == general_result[1]
        assert np.array_equal(fast_result[2], general_result[2])
