"""Added by the lead (integration with bss2.exec): configuration and MACs in ONE program.

The executor sends the differential configuration (including CapMem writes, a timer reset and a 20 ms
settling wait) and the input vectors in a single program. The writes before the events must take effect
(CapMem settled after the wait), exactly as when the same words are split over two execute() calls.
Currently the single-program case returns wrong values (max error ~123 LSB on the ideal chip), while
the two-call case is exact.
"""

import numpy as np

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig


def _error(one_call: bool) -> float:
    rng = np.random.default_rng(0)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (5, 128))
    expected = np.clip(np.floor(0.002 * (x @ w)), -128, 127)
    emulator = Emulator(seed=1, config=EmulatorConfig.ideal())
    config = hagen.hagen_config_words({0: w})
    inputs = hagen.hagen_input_words({0: x}, end_cookie=5)
    if one_call:
        responses = emulator.execute(np.concatenate([config, inputs]))
    else:
        emulator.execute(np.concatenate([config, wire.encode_end(1)]))
        responses = emulator.execute(inputs)
    return float(np.abs(hagen.decode_hagen_responses(responses, [0], 5)[0] - expected).max())


def test_config_and_inputs_in_separate_programs_are_exact():
    assert _error(one_call=False) == 0


def test_config_and_inputs_in_one_program_are_exact():
    assert _error(one_call=True) == 0
