"""Added by the lead: programs with a configuration prefix followed by canonical MAC vectors.

The executor sends the differential configuration and the input vectors in one program. The result must
equal the general interpreter's (fast path off) bit for bit on the ideal chip, and in distribution on the
default chip.
"""

import numpy as np
import pytest

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig, kernels
from bss2.hal.errors import EncodingError


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


def _update_parts(rng: np.random.Generator, x: np.ndarray) -> list[np.ndarray]:
    return [
        hagen.hagen_synapse_words(0, rng.integers(-63, 64, (128, 256))),
        wire.encode_write([0x10000 + 5, 0x10000 + 16384 + 7], rng.integers(0, 2**32, 2)),
        hagen.hagen_synapse_words(1, rng.integers(-63, 64, (128, 256))),
        hagen.hagen_input_words({0: x, 1: x}, end_cookie=4),
    ]


@pytest.mark.parametrize("config", [EmulatorConfig.ideal(), EmulatorConfig.default()], ids=["ideal", "default"])
def test_a_program_in_parts_runs_as_the_joined_program(config, monkeypatch):
    rng = np.random.default_rng(3)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (20, 128))
    setup = hagen.hagen_config_words({0: w, 1: w})
    parts = _update_parts(rng, x)
    joined, split = Emulator(seed=4, config=config), Emulator(seed=4, config=config)
    for emulator in (joined, split):
        emulator.execute(setup)
    expected = joined.execute(np.concatenate(parts))
    if kernels.mode() == "numba":  # the synapse parts are stored where they lie: no joined program
        monkeypatch.setattr(split, "execute", lambda words: pytest.fail("the parts were joined"))
    got = split.execute_parts(parts)
    assert np.array_equal(got, expected)
    assert split.time == joined.time and split.last_timing == joined.last_timing
    assert np.array_equal(split.memory, joined.memory)


@pytest.mark.parametrize("case", ["other register", "block across parts", "no vector after", "one part",
                                  "unaligned and read-only"])
def test_parts_that_are_not_synapse_writes_before_vectors_run_joined(case):
    """Each case gives the joined program's result (unaligned and read-only parts are synapse writes, but
    must give the same result whichever path takes them)."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 32, (6, 128))
    parts = _update_parts(rng, x)
    if case == "unaligned and read-only":
        unaligned = np.frombuffer(bytearray(parts[1].nbytes + 1), np.uint64, count=parts[1].size, offset=1)
        unaligned[:] = parts[1]
        assert not unaligned.flags.aligned
        parts[1] = unaligned
        parts[2].flags.writeable = False
    elif case == "other register":
        parts.insert(1, wire.encode_write([1], [1]))
    elif case == "block across parts":
        parts[0:1] = [parts[0][:100], parts[0][100:]]
    elif case == "no vector after":
        parts[-1] = np.concatenate([wire.encode_write([1], [1]), parts[-1]])
    else:
        parts = [np.concatenate(parts)]
    joined, split = Emulator(seed=6, config=EmulatorConfig.ideal()), Emulator(seed=6, config=EmulatorConfig.ideal())
    assert np.array_equal(split.execute_parts(parts), joined.execute(np.concatenate(parts)))
    assert split.time == joined.time and np.array_equal(split.memory, joined.memory)


def test_a_bad_part_raises_and_changes_nothing():
    rng = np.random.default_rng(5)
    parts = _update_parts(rng, rng.integers(0, 32, (3, 128)))
    emulator = Emulator(seed=1)
    memory, time = emulator.memory.copy(), emulator.time
    for bad in (parts[0].astype(np.float64), parts[0][:-1].reshape(2, -1)):
        with pytest.raises(EncodingError, match=r"parts\[1\]"):
            emulator.execute_parts([parts[1], bad, parts[-1]])
    assert emulator.time == time and np.array_equal(emulator.memory, memory)
    assert emulator.execute_parts([]).size == 0
