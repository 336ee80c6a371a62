"""Short control-only programs (timer, waits, barriers, END) take a shortcut that must equal the general path."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.hal import wire
from bss2.hal.emulator import Emulator
from bss2.hal.regmap import REGISTER_MAP

_OPS = [wire.Opcode.TIMER_RESET, wire.Opcode.WAIT_UNTIL, wire.Opcode.BARRIER, wire.Opcode.END]


def _word(op: int, payload: int) -> int:
    return (int(op) << 56) | payload


@st.composite
def control_programs(draw):
    n = draw(st.integers(1, 70))  # beyond the shortcut's limit too
    words = []
    for _ in range(n):
        op = draw(st.sampled_from(_OPS + [wire.Opcode.READ]))  # a READ makes it a general program
        # small waits (a long one on a busy chip would simulate millions of background events) or payloads
        # with bits the instruction must leave zero (malformed)
        payload = draw(st.sampled_from([0, draw(st.integers(0, 5000)), draw(st.integers(1, (1 << 24) - 1)) << 32]))
        words.append(_word(op, payload))
    return np.array(words, dtype=np.uint64)


def _busy_chip(emulator: Emulator) -> None:
    """A background source driving a firing neuron: time passing makes spikes happen."""
    base = REGISTER_MAP["background_spike_source"].base
    emulator.execute(wire.encode_write([base, base + 1, base + 2], [1 | (200 << 16), 7, 0]))


@settings(max_examples=60, deadline=None)
@given(program=control_programs(), busy=st.booleans(), seed=st.integers(0, 3))
def test_control_programs_equal_the_general_path(program, busy, seed):
    results = []
    for fast in (True, False):
        emulator = Emulator(seed=seed)
        emulator.fast_path = fast
        if busy:
            _busy_chip(emulator)
        emulator.execute(np.array([_word(wire.Opcode.WAIT_UNTIL, 100)], np.uint64))  # timer state before
        results.append((emulator.execute(program), emulator))
    (a, ea), (b, eb) = results
    np.testing.assert_array_equal(a, b)
    assert ea.time == eb.time and ea.timer_zero == eb.timer_zero and ea.last_timing == eb.last_timing
    np.testing.assert_array_equal(ea.memory, eb.memory)


def test_an_empty_program_answers_its_end_and_advances_the_clock():
    emulator = Emulator(seed=0)
    t0 = emulator.time
    responses = emulator.execute(wire.encode_end(0xABCD))
    assert responses.tolist() == [(int(wire.ResponseType.END) << 56) | 0xABCD]
    assert emulator.time == t0 + emulator.config.instruction_cycles
