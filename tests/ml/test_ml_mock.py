"""Mock parameter, mock forward statistics and measurement on the backend."""

from __future__ import annotations

import warnings

import pytest
import torch

import bss2.ml as ml
from bss2.ml import mock as mock_module

from ml_testutil import random_inputs, random_weights


def test_mock_parameter_defaults_are_hxtorchs() -> None:
    assert ml.MockParameter() == ml.MockParameter(noise_std=2.0, gain=0.002)


@pytest.mark.parametrize("kwargs", [{"gain": 0.0}, {"gain": 1.5}, {"gain": -0.1}, {"gain": float("nan")},
                                    {"noise_std": -1.0}, {"noise_std": float("inf")}])
def test_mock_parameter_rejects_invalid_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="MockParameter"):
        ml.MockParameter(**kwargs)


def test_set_and_get_mock_parameter() -> None:
    parameter = ml.MockParameter(noise_std=0.5, gain=0.004)
    ml.set_mock_parameter(parameter)
    assert ml.get_mock_parameter() is parameter
    with pytest.raises(TypeError):
        ml.set_mock_parameter((0.5, 0.004))  # type: ignore[arg-type]


def _gain_and_noise(x: torch.Tensor, w: torch.Tensor, num_sends: int) -> tuple[float, float]:
    out = ml.matmul(x, w, num_sends=num_sends, mock=True)
    ideal = (x @ w) * num_sends
    fit = float((out * ideal).sum() / (ideal * ideal).sum())
    residual = out - fit * ideal + 0.5  # floor subtracts 0.5 on average
    return fit, float(residual.std())


@pytest.mark.parametrize(("gain", "noise_std", "num_sends"), [(0.002, 2.0, 1), (0.001, 1.0, 3), (0.003, 0.0, 1)])
def test_mock_forward_statistics(gain: float, noise_std: float, num_sends: int) -> None:
    ml.set_mock_parameter(ml.MockParameter(noise_std=noise_std, gain=gain))
    x, w = random_inputs(400, 100), random_weights(100, 64, high=20)
    measured_gain, measured_noise = _gain_and_noise(x, w, num_sends)
    assert measured_gain == pytest.approx(gain, rel=0.02)
    # floor adds uniform quantisation noise (std 1/sqrt(12))
    assert measured_noise == pytest.approx((noise_std ** 2 + 1 / 12) ** 0.5, rel=0.1)


def test_large_cpu_outputs_use_the_noise_pool_with_exact_statistics() -> None:
    x, w = random_inputs(1200, 1024, high=4), random_weights(1024, 512, high=5)
    assert 8 * 1200 * 512 > mock_module._FRESH_NOISE_LIMIT
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0))
    clean = ml.matmul(x, w, mock=True)
    ml.set_mock_parameter(ml.MockParameter(noise_std=3.0))
    noisy = ml.matmul(x, w, mock=True)
    difference = noisy - clean  # eight tiles of independent noise, each floored
    assert float(difference.mean()) == pytest.approx(0.0, abs=0.1)
    assert float(difference.std()) == pytest.approx((8 * 9.0) ** 0.5, rel=0.05)
    assert not torch.equal(noisy, ml.matmul(x, w, mock=True))


def test_mock_outputs_saturate() -> None:
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0))
    out = ml.matmul(torch.full((2, 128), 31.0), torch.full((128, 2), 63.0), num_sends=4, mock=True)
    assert out.tolist() == [[127, 127], [127, 127]]


def test_mock_is_reproducible_with_the_torch_seed() -> None:
    x, w = random_inputs(20, 50), random_weights(50, 10)
    torch.manual_seed(5)
    first = ml.matmul(x, w, mock=True)
    torch.manual_seed(5)
    assert torch.equal(first, ml.matmul(x, w, mock=True))


def test_measure_mock_parameter_on_the_ideal_backend() -> None:
    measured = ml.measure_mock_parameter()
    assert measured.gain == pytest.approx(0.002, rel=0.01)
    assert measured.noise_std < 0.5  # only the floor's quantisation
    assert ml.get_mock_parameter() == ml.MockParameter()  # measuring does not install


def test_measure_mock_parameter_goes_through_run_matmul(monkeypatch: pytest.MonkeyPatch) -> None:
    from bss2.ml import _hardware

    def doubled_gain(inputs, weights, num_sends, wait_between_events):  # type: ignore[no-untyped-def]
        acc = inputs @ weights
        return (acc * num_sends // 250).clip(-128, 127)

    monkeypatch.setattr(_hardware, "run_matmul", doubled_gain)
    assert ml.measure_mock_parameter().gain == pytest.approx(0.004, rel=0.01)


def _reference_mock(x: torch.Tensor, w: torch.Tensor, num_sends: int, gain: float) -> torch.Tensor:
    """The noise-free model, tile by tile, in float64."""
    x, w = x.double(), w.double()
    total = torch.zeros(x.shape[0], w.shape[1], dtype=torch.float64)
    for start in range(0, max(x.shape[1], 1), 128):
        product = x[:, start:start + 128] @ w[start:start + 128]
        total += torch.floor(product * (num_sends * gain)).clamp(-128, 127)
    return total.clamp(-128, 127)


@pytest.fixture(params=["int8", "float"])
def large_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test on each GEMM of the large CPU path (the int8 one also where torch runs it as a plain loop)."""
    monkeypatch.setattr(mock_module, "_int8_gemm_is_fast", lambda: request.param == "int8")
    return str(request.param)


@pytest.mark.parametrize(("batch", "rows", "columns"), [(1200, 1024, 512), (700, 300, 1100), (3000, 100, 600)])
def test_large_cpu_path_is_exact_without_noise(large_path: str, batch: int, rows: int, columns: int) -> None:
    assert -(-rows // 128) * batch * columns > mock_module._FRESH_NOISE_LIMIT  # the large-call path
    gain, num_sends = 0.003, 2
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0, gain=gain))
    x, w = random_inputs(batch, rows), random_weights(rows, columns)
    out = ml.matmul(x, w, num_sends=num_sends, mock=True)
    reference = _reference_mock(x, w, num_sends, gain)
    assert out.dtype == x.dtype
    assert torch.equal(out.double(), reference)
    assert float(reference.abs().max()) >= 127  # saturation is exercised


def test_large_cpu_path_is_exact_without_noise_in_float64(large_path: str) -> None:
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0, gain=0.003))
    x, w = random_inputs(900, 400).double(), random_weights(400, 700).double()
    out = ml.matmul(x, w, num_sends=2, mock=True)
    assert out.dtype == torch.float64
    assert torch.equal(out, _reference_mock(x, w, 2, 0.003))


def test_large_and_small_paths_agree_without_noise(large_path: str) -> None:
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0, gain=0.002))
    x, w = random_inputs(1500, 600), random_weights(600, 384)
    large = mock_module.mock_matmul(x, w, 1, ml.get_mock_parameter())
    small = torch.cat([mock_module.mock_matmul(x[i:i + 100], w, 1, ml.get_mock_parameter())
                       for i in range(0, 1500, 100)])
    assert torch.equal(large, small)


def test_int8_gemm_follows_the_onednn_switch() -> None:
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        assert not mock_module._int8_gemm_is_fast()  # torch's int8 fallback would be a plain loop
    finally:
        torch.backends.mkldnn.enabled = enabled


@pytest.mark.skipif(not mock_module._int8_gemm_is_fast(), reason="torch runs int8 GEMMs as a plain loop here")
def test_int8_gemms_take_onednn_for_odd_shapes() -> None:
    # A failing oneDNN call makes torch warn and fall back to its plain loop (right, but slow).
    x, w = random_inputs(1100, 300), random_weights(300, 1000)  # strided input slices, a 44-row last tile
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mock_module._mock_matmul_cpu_int8(x, w, 0.002, 2.0)


def _column(total: int) -> torch.Tensor:
    """A 128-row weight column (entries in -63..63) summing to ``total``."""
    column = torch.zeros(128)
    count, rest = divmod(abs(total), 63)
    column[:count] = 63.0
    column[count] = rest
    return column * (1 if total >= 0 else -1)


def _model_pmf(tile_values: list[float], noise_std: float, clamp_tiles: bool = True,
               rounding: str = "floor") -> torch.Tensor:
    """P(output = k) for k = -128..127 of the mock model, computed exactly from the normal CDF: per tile
    ``clamp(floor(v + N(0, noise_std**2)))``, the tiles' distributions convolved, the sum clamped.
    ``clamp_tiles=False`` and ``rounding="round"`` give wrong models, to show what the test can tell apart."""
    values = torch.arange(-300, 301, dtype=torch.float64)
    shift = 0.0 if rounding == "floor" else 0.5  # round(v + n) = k for v + n in [k - 0.5, k + 0.5)
    total = torch.ones(1, dtype=torch.float64)
    for value in tile_values:
        cdf = torch.special.ndtr((values + 1.0 - shift - value) / noise_std)
        pmf = cdf - torch.special.ndtr((values - shift - value) / noise_std)
        if clamp_tiles:
            pmf = torch.zeros_like(pmf).index_add_(0, (values.clamp(-128, 127) + 300).long(), pmf)
        total = torch.nn.functional.conv1d(total.view(1, 1, -1), pmf.flip(0).view(1, 1, -1),
                                           padding=pmf.numel() - 1).view(-1)
    support = torch.arange(total.numel(), dtype=torch.float64) - 300 * len(tile_values)
    return torch.zeros(256, dtype=torch.float64).index_add_(0, (support.clamp(-128, 127) + 128).long(), total)


@pytest.mark.parametrize("path", ["int8", "float", "small"])
def test_mock_outputs_have_the_models_distribution(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The histogram of many outputs with known tile values matches the model's exact distribution.

    Two column groups, eight tiles each: tiles alternating near +126 and -126.5, where the noise often pushes a
    tile past the 8-bit range (the per-tile clamp matters), and tiles near 16 whose sum often exceeds 127 (the final
    clamp matters). Total variation distance to the model: ~0.003 from sampling; a model without the per-tile clamp
    is 0.12 away, rounding instead of floor 0.26, a noise 10 % too large 0.035, correlated tile noise further still.
    """
    monkeypatch.setattr(mock_module, "_int8_gemm_is_fast", lambda: path == "int8")
    gain, noise_std = 0.002, 2.0
    ml.set_mock_parameter(ml.MockParameter(noise_std=noise_std, gain=gain))
    groups = [[2032, -2040] * 4, [258] * 8]  # weight sums per tile; the inputs are all 31
    w = torch.cat([torch.cat([_column(total) for total in totals]).unsqueeze(1).expand(1024, 256)
                   for totals in groups], dim=1)
    x = torch.full((1200, 1024), 31.0)
    if path == "small":
        assert 8 * 100 * 512 <= mock_module._FRESH_NOISE_LIMIT
        out = torch.cat([ml.matmul(x[i:i + 100], w, mock=True) for i in range(0, 1200, 100)])
    else:
        assert 8 * 1200 * 512 > mock_module._FRESH_NOISE_LIMIT
        out = ml.matmul(x, w, mock=True)
    assert float(out.min()) >= -128 and float(out.max()) <= 127
    assert torch.equal(out, out.floor())
    for group, totals in enumerate(groups):
        tile_values = [gain * 31 * total for total in totals]
        model = _model_pmf(tile_values, noise_std)
        counts = torch.bincount(out[:, 256 * group:256 * (group + 1)].reshape(-1).long() + 128, minlength=256)
        distance = 0.5 * float((counts.double() / counts.sum() - model).abs().sum())
        assert distance < 0.012
    # the test tells the wrong models apart
    tile_values = [gain * 31 * total for total in groups[0]]
    model = _model_pmf(tile_values, noise_std)
    for wrong in (_model_pmf(tile_values, noise_std, clamp_tiles=False),
                  _model_pmf(tile_values, noise_std, rounding="round"),
                  _model_pmf(tile_values, 1.1 * noise_std)):
        assert 0.5 * float((wrong - model).abs().sum()) > 0.03


def test_pool_windows_of_one_block_are_distinct() -> None:
    pool = torch.zeros(64 * 20)
    for _ in range(50):
        offsets = mock_module._pool_offsets(pool, 64 * 10, 8)
        assert len(set(offsets)) == 8
        assert all(offset % 64 == 0 and 0 <= offset <= 64 * 10 for offset in offsets)
    with pytest.raises(ValueError):
        mock_module._pool_offsets(pool, 64 * 15, 8)
