"""The timing model: chip timeline versus link time (model time, never wall-clock time)."""

import numpy as np
import pytest

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig


def test_waits_set_the_chip_timeline():
    emulator = Emulator()
    emulator.execute(np.concatenate([wire.encode_timer_reset(), wire.encode_wait_until([125_000]), wire.encode_end(0)]))
    timing = emulator.last_timing
    assert timing.chip_s == pytest.approx(125_001 * 8e-9)
    assert emulator.hardware_time == timing.total_s == timing.chip_s


def test_link_time_dominates_data_heavy_programs():
    emulator = Emulator()
    words = wire.encode_read_block(0x8000, 8192)
    emulator.execute(words)
    timing = emulator.last_timing
    assert timing.response_words == 1 + 4096
    assert timing.host_link_s == pytest.approx(4097 * 64 / 1e9)
    assert emulator.hardware_time == timing.host_link_s > timing.chip_s


def test_link_bandwidth_is_configurable():
    slow = Emulator(config=EmulatorConfig.default().evolve(host_link_bits_per_s=1e6))
    slow.execute(wire.encode_read([0]))
    assert slow.hardware_time == pytest.approx(64 / 1e6)


def test_hagen_integration_takes_about_5_us_per_vector():
    rng = np.random.default_rng(0)
    emulator = Emulator()
    emulator.execute(hagen.hagen_config_words({h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}))
    assert emulator.last_timing.chip_s >= 0.02  # the CapMem settling wait
    batch = 100
    emulator.execute(hagen.hagen_input_words({h: rng.integers(1, 32, (batch, 128)) for h in (0, 1)}))
    per_vector = emulator.last_timing.chip_s / batch
    assert 4e-6 < per_vector < 7e-6
    assert emulator.hardware_time >= emulator.last_timing.chip_s


def test_model_clock_continues_across_programs():
    emulator = Emulator()
    emulator.execute(np.concatenate([wire.encode_timer_reset(), wire.encode_wait_until([500])]))
    data = wire.decode_responses(emulator.execute(wire.encode_read([2]))).read_data
    assert data.tolist() == [500]  # the wait ends when the timer reads 500
