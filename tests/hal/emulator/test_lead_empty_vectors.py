"""Added by the lead: input vectors without any event (all zeros) between vectors with events.

A window without events must read the baseline (y = 0 on the ideal chip, small noise on the default
chip), never overflow or NaN; this happens in every convolution over images with blank patches.
"""

import warnings

import numpy as np

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig


def _run(config: EmulatorConfig) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (40, 128))
    x[::3] = 0  # every third vector sends nothing
    emulator = Emulator(seed=2, config=config)
    emulator.execute(np.concatenate([hagen.hagen_config_words({0: w}), wire.encode_end(1)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow or invalid cast is a failure
        responses = emulator.execute(hagen.hagen_input_words({0: x}, end_cookie=2))
    return hagen.decode_hagen_responses(responses, [0], 40)[0], x


def test_empty_vectors_read_the_baseline_on_the_ideal_chip():
    y, x = _run(EmulatorConfig.ideal())
    assert (y[::3] == 0).all()


def test_empty_vectors_read_near_the_baseline_on_the_default_chip():
    y, _ = _run(EmulatorConfig.default())
    assert np.abs(y[::3].astype(float)).mean() < 10  # offsets and noise only
