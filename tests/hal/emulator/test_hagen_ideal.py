"""Ideal config: the hagen MAC is exactly floor(gain * num_sends * x @ W), clipped to [-128, 127]."""

import numpy as np
import pytest

from bss2.hal import hagen
from bss2.hal.emulator import Emulator, EmulatorConfig

GAIN = EmulatorConfig.ideal().hagen_gain


def expected(x, w, num_sends=1):
    # exact integer arithmetic: gain = 1/500
    return np.clip(np.floor(num_sends * (x @ w) / 500), -128, 127)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    weights = {h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}
    emulator = Emulator(seed=12, config=EmulatorConfig.ideal())
    emulator.execute(hagen.hagen_config_words(weights))
    return emulator, weights, rng


def mac(emulator, inputs, **kwargs):
    batch = next(iter(inputs.values())).shape[0]
    responses = emulator.execute(hagen.hagen_input_words(inputs, end_cookie=1, **kwargs))
    return hagen.decode_hagen_responses(responses, inputs.keys(), batch)


def test_random_inputs_on_both_synrams(setup):
    emulator, weights, rng = setup
    x = {h: rng.integers(0, 32, (64, 128)) for h in (0, 1)}
    y = mac(emulator, x)
    for h in (0, 1):
        assert np.array_equal(y[h], expected(x[h], weights[h]))


def test_one_synram_at_a_time(setup):
    emulator, weights, rng = setup
    for h in (0, 1):
        x = {h: rng.integers(0, 32, (16, 128))}
        assert np.array_equal(mac(emulator, x)[h], expected(x[h], weights[h]))


@pytest.mark.parametrize("num_sends", [2, 5])
def test_num_sends_multiplies(setup, num_sends):
    emulator, weights, rng = setup
    x = {0: rng.integers(0, 12, (16, 128)), 1: rng.integers(0, 12, (16, 128))}
    y = mac(emulator, x, num_sends=num_sends)
    for h in (0, 1):
        assert np.array_equal(y[h], expected(x[h], weights[h], num_sends))


def test_sparse_and_zero_inputs(setup):
    emulator, weights, rng = setup
    x = rng.integers(0, 32, (20, 128)) * (rng.random((20, 128)) < 0.1)
    x[0] = 0
    y = mac(emulator, {0: x})[0]
    assert np.array_equal(y, expected(x, weights[0]))
    assert not y[0].any()


def test_large_responses_clip_at_the_adc_range():
    emulator = Emulator(seed=1, config=EmulatorConfig.ideal())
    w = np.full((128, 256), 63)
    w[:, 128:] = -63
    emulator.execute(hagen.hagen_config_words({1: w}))
    y = mac(emulator, {1: np.full((2, 128), 31)})[1]
    assert (y[:, :128] == 127).all() and (y[:, 128:] == -128).all()


def test_wait_between_events_does_not_matter_without_leakage(setup):
    emulator, weights, rng = setup
    x = {0: rng.integers(0, 32, (8, 128))}
    assert np.array_equal(mac(emulator, x, wait_between_events=0)[0], mac(emulator, x, wait_between_events=40)[0])
