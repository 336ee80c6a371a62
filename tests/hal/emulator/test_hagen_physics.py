"""Default config: the hagen MAC has the documented imperfections (docs/emulator.rst)."""

import numpy as np
import pytest

from bss2.hal import hagen
from bss2.hal.emulator import Emulator, EmulatorConfig

GAIN = 0.002


def mac(emulator, inputs, **kwargs):
    batch = next(iter(inputs.values())).shape[0]
    return hagen.decode_hagen_responses(emulator.execute(hagen.hagen_input_words(inputs, **kwargs)), inputs.keys(), batch)


def per_neuron_gain(y, ideal):
    """Least-squares slope (with intercept) of each column's response against the ideal response."""
    ideal_c = ideal - ideal.mean(0)
    return (ideal_c * (y - y.mean(0))).sum(0) / (ideal_c**2).sum(0)


def linear_inputs(rng, batch=96, high=32):
    # responses within about +-60 LSB (the linear range of every neuron), spread over the batch
    return rng.integers(0, high, (batch, 128)) * (rng.random((batch, 128)) < rng.random((batch, 1)))


@pytest.fixture(scope="module")
def chip():
    rng = np.random.default_rng(5)
    weights = rng.integers(-63, 64, (128, 256))
    emulator = Emulator(seed=21)
    emulator.execute(hagen.hagen_config_words({0: weights}))
    return emulator, weights, rng


def test_uncalibrated_gain_spread_is_10_to_20_percent(chip):
    emulator, weights, rng = chip
    x = linear_inputs(rng)
    gains = per_neuron_gain(mac(emulator, {0: x})[0], GAIN * (x @ weights))
    spread = gains.std() / gains.mean()
    assert 0.10 <= spread <= 0.20
    assert 0.85 < gains.mean() < 1.15


def test_temporal_noise_is_about_2_lsb_and_fresh_per_readout(chip):
    emulator, _, rng = chip
    x = np.repeat(linear_inputs(rng, 4), 60, axis=0)
    y = mac(emulator, {0: x})[0].reshape(4, 60, 256).astype(float)
    std = y.std(axis=1).mean()
    assert 1.6 < std < 2.5


def test_per_neuron_offsets_exist(chip):
    emulator, _, _ = chip
    y = mac(emulator, {0: np.zeros((40, 128), np.int64)})[0].mean(0)
    assert 1.5 < y.std() < 6.0


@pytest.fixture(scope="module")
def sweep():
    """All inputs at one level, weights +20 (columns 0..127) and -20 (128..255): ideal = +-5.12 * level."""
    emulator = Emulator(seed=4)
    w = np.full((128, 256), 20)
    w[:, 128:] = -20
    emulator.execute(hagen.hagen_config_words({0: w}))
    levels = np.arange(0, 32)
    x = np.repeat(np.repeat(levels[:, None], 128, axis=1), 8, axis=0)
    y = mac(emulator, {0: x})[0].reshape(levels.size, 8, 256).mean(1)
    ideal = GAIN * 128 * 20 * levels
    return ideal, y


def test_mean_response_is_linear_within_80_lsb(sweep):
    ideal, y = sweep
    for sign, cols in ((1, slice(0, 128)), (-1, slice(128, 256))):
        mean = sign * y[:, cols].mean(1)
        inside = ideal < 80
        slope, intercept = np.polyfit(ideal[inside], mean[inside], 1)
        assert 0.9 < slope < 1.1
        assert np.abs(mean[inside] - (slope * ideal[inside] + intercept)).max() < 1.5


def test_response_bends_above_the_band_at_a_knee_that_differs_per_neuron(sweep):
    ideal, y = sweep
    inside = ideal < 70
    fits = [np.polyfit(ideal[inside], y[inside, j], 1) for j in range(256)]
    line = np.stack([slope * ideal + intercept for slope, intercept in fits], axis=1)
    deviation = y - line  # positive columns bend down, negative columns up
    deviation[:, 128:] *= -1
    unclipped = (line > -120) & (line < 120)
    bent = (deviation < -4) & unclipped
    assert bent[line.mean(1) > 100].any() or bent[ideal > 100].any()
    knee = np.where(bent.any(0), ideal[np.argmax(bent, axis=0)], np.nan)
    assert np.unique(knee[np.isfinite(knee)]).size > 3
    assert y.max() <= 127 and y.min() >= -128
    assert y[-1, :128].mean() > 100  # far beyond the knee the response approaches the ADC end


def fixed_pattern(seed, weights, x):
    emulator = Emulator(seed=seed)
    emulator.execute(hagen.hagen_config_words({0: weights}))
    return per_neuron_gain(mac(emulator, {0: x})[0], GAIN * (x @ weights))


def test_same_seed_same_pattern_other_seed_different():
    rng = np.random.default_rng(9)
    weights = rng.integers(-63, 64, (128, 256))
    x = linear_inputs(rng)
    a, b, c = fixed_pattern(3, weights, x), fixed_pattern(3, weights, x), fixed_pattern(4, weights, x)
    assert np.corrcoef(a, b)[0, 1] > 0.95
    assert abs(np.corrcoef(a, c)[0, 1]) < 0.5


def calibrate(emulator, rng, rounds=3):
    """Equalise the per-neuron excitatory and inhibitory gains by scaling each neuron's gm CapMem cell."""
    codes = {name: np.full(512, 500) for name in ("i_bias_syn_exc_gm", "i_bias_syn_inh_gm")}
    for _ in range(rounds):
        for name, sign in (("i_bias_syn_exc_gm", 1), ("i_bias_syn_inh_gm", -1)):
            w = sign * rng.integers(0, 64, (128, 256))
            emulator.execute(hagen.hagen_config_words({0: w}, neuron_capmem=codes))
            x = linear_inputs(rng, high=16)  # single-signed weights: keep the responses inside the linear band
            gains = per_neuron_gain(mac(emulator, {0: x})[0], GAIN * (x @ w))
            codes[name][:256] = np.clip(np.round(codes[name][:256] / gains * 1.0), 1, 1022)
    return codes


def test_calibrating_gm_cells_shrinks_the_spread_to_3_percent():
    rng = np.random.default_rng(17)
    emulator = Emulator(seed=8)
    codes = calibrate(emulator, rng)
    weights = rng.integers(-63, 64, (128, 256))
    emulator.execute(hagen.hagen_config_words({0: weights}, neuron_capmem=codes))
    x = linear_inputs(rng, 128)
    gains = per_neuron_gain(mac(emulator, {0: x})[0], GAIN * (x @ weights))
    assert gains.std() / gains.mean() <= 0.03


def test_longer_spacing_and_more_sends_lose_a_little_charge(chip):
    emulator, weights, rng = chip
    w_pos = np.abs(weights)
    emulator.execute(hagen.hagen_config_words({0: w_pos}))
    x = rng.integers(0, 8, (32, 128))
    short = mac(emulator, {0: x}, wait_between_events=5)[0].mean()
    long = mac(emulator, {0: x}, wait_between_events=60)[0].mean()
    assert 0.85 * short < long < 0.995 * short
    emulator.execute(hagen.hagen_config_words({0: weights}))


def test_very_short_spacing_loses_events(chip):
    emulator, weights, rng = chip
    w_pos = np.abs(weights)
    emulator.execute(hagen.hagen_config_words({0: w_pos, 1: w_pos}))
    x = rng.integers(0, 8, (32, 128))
    normal = mac(emulator, {0: x, 1: x}, wait_between_events=5)[0].mean()
    crowded = mac(emulator, {0: x, 1: x}, wait_between_events=0)[0].mean()
    assert crowded < 0.95 * normal
    emulator.execute(hagen.hagen_config_words({0: weights}))


def test_capmem_values_take_effect_only_after_settling():
    rng = np.random.default_rng(2)
    weights = np.abs(rng.integers(0, 64, (128, 256)))
    emulator = Emulator(seed=6, config=EmulatorConfig.ideal())
    x = {0: rng.integers(0, 32, (4, 128))}
    emulator.execute(hagen.hagen_config_words({0: weights}, settle_cycles=1))
    early = mac(emulator, x)[0].mean()
    emulator.execute(hagen.hagen_config_words({0: weights}))  # same values again, now with the 20 ms wait
    settled = mac(emulator, x)[0].mean()
    assert early < 0.5 * settled
