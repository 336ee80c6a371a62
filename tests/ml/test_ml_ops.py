"""Shapes, values, gradients and argument errors of the bss2.ml operations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import bss2.ml as ml

from ml_testutil import random_inputs, random_weights

NOISELESS = ml.MockParameter(noise_std=0.0)


def ideal(x: torch.Tensor, w: torch.Tensor, num_sends: int = 1) -> torch.Tensor:
    """floor(0.002 * num_sends * x @ w) per 128-row tile, saturated, summed, saturated (exact integer arithmetic)."""
    tiles = [(x[..., i:i + 128].double() @ w[i:i + 128].double()) for i in range(0, x.shape[-1], 128)]
    per_tile = [torch.div(t * num_sends, 500, rounding_mode="floor").clamp(-128, 127) for t in tiles]
    return torch.stack(per_tile).sum(0).clamp(-128, 127).float()


@pytest.mark.parametrize("mock", [False, True])
@pytest.mark.parametrize(("input_shape", "other_shape", "out_shape"), [
    ((7,), (7, 3), (3,)),
    ((5, 7), (7, 3), (5, 3)),
    ((2, 4, 7), (7, 3), (2, 4, 3)),
    ((5, 7), (7,), (5,)),
    ((2, 3, 4, 7), (7,), (2, 3, 4)),
])
def test_matmul_follows_torch_shape_rules(mock: bool, input_shape: tuple[int, ...], other_shape: tuple[int, ...],
                                          out_shape: tuple[int, ...]) -> None:
    out = ml.matmul(random_inputs(*input_shape), random_weights(*other_shape), mock=mock)
    assert out.shape == torch.matmul(torch.zeros(input_shape), torch.zeros(other_shape)).shape == out_shape


@pytest.mark.parametrize("rows", [1, 100, 128, 129, 300, 513])
def test_hardware_matmul_is_the_tiled_ideal_arithmetic(rows: int) -> None:
    x, w = random_inputs(6, rows), random_weights(rows, 9)
    for num_sends in (1, 3):
        assert torch.equal(ml.matmul(x, w, num_sends=num_sends), ideal(x, w, num_sends))


def test_tiles_saturate_before_they_are_summed() -> None:
    x = torch.full((1, 256), 31.0)
    w = torch.cat([torch.full((128, 1), 63.0), torch.full((128, 1), -10.0)])
    # tile 1: 500 -> 127, tile 2: -80 -> sum 47 (an unsaturated sum would give 420 -> 127)
    assert ml.matmul(x, w).item() == 127 - 80


def test_mock_without_noise_matches_hardware_within_one_lsb_per_tile() -> None:
    ml.set_mock_parameter(NOISELESS)
    x, w = random_inputs(50, 300), random_weights(300, 20)
    assert (ml.matmul(x, w, mock=True) - ml.matmul(x, w)).abs().max() <= 3


def test_inputs_and_weights_are_rounded() -> None:
    x, w = random_inputs(4, 10), random_weights(10, 3)
    assert torch.equal(ml.matmul(x + 0.3, w - 0.4), ml.matmul(x, w))


@pytest.mark.parametrize("mock", [False, True])
@pytest.mark.parametrize("num_sends", [1, 4])
def test_matmul_gradients_are_torch_gradients_times_gain_and_sends(mock: bool, num_sends: int) -> None:
    x = random_inputs(5, 200).requires_grad_()
    w = random_weights(200, 6).requires_grad_()
    grad = torch.randn(5, 6)
    ml.matmul(x, w, num_sends=num_sends, mock=mock).backward(grad)
    x_ref, w_ref = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    torch.matmul(x_ref, w_ref).backward(grad * 0.002 * num_sends)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(w.grad, w_ref.grad)


def test_gradient_scale_follows_the_mock_gain() -> None:
    ml.set_mock_parameter(ml.MockParameter(gain=0.01))
    x, w = random_inputs(3, 8), random_weights(8, 2).requires_grad_()
    ml.matmul(x, w).sum().backward()  # the hardware path's backward uses the mock gain as well
    torch.testing.assert_close(w.grad, x.t() @ torch.full((3, 2), 0.01))


def test_conv1d_matches_torch_per_tile() -> None:
    x, w = random_inputs(3, 2, 40), random_weights(4, 2, 8)
    out = ml.conv1d(x, w, stride=3)
    expected = ideal(x.unfold(2, 8, 3).permute(0, 2, 1, 3).reshape(-1, 16), w.reshape(4, 16).t())
    assert out.shape == F.conv1d(x, w, stride=3).shape
    assert torch.equal(out, expected.view(3, -1, 4).permute(0, 2, 1))


def test_conv1d_bias_and_unbatched_input() -> None:
    x, w, b = random_inputs(2, 40), random_weights(4, 2, 8), torch.randn(4)
    out = ml.conv1d(x, w, b, stride=2)
    assert out.shape == F.conv1d(x, w, b, stride=2).shape
    torch.testing.assert_close(out - ml.conv1d(x, w, stride=2), b[:, None].expand(4, out.shape[1]))


@pytest.mark.parametrize("stride", [1, 2, (2, 3)])
def test_conv2d_shape_and_values_match_torch(stride: int | tuple[int, int]) -> None:
    x, w = random_inputs(2, 3, 12, 11), random_weights(5, 3, 3, 4, high=20)
    out = ml.conv2d(x, w, stride=stride)
    reference = F.conv2d(x, w, stride=stride)
    assert out.shape == reference.shape
    # 36 rows: one tile, so the result is floor(0.002 * reference) exactly
    assert torch.equal(out, torch.div(reference.double(), 500, rounding_mode="floor").clamp(-128, 127).float())


def test_conv_gradients_are_scaled_torch_gradients() -> None:
    x = random_inputs(2, 3, 20).requires_grad_()
    w = random_weights(4, 3, 5).requires_grad_()
    ml.conv1d(x, w, stride=2, num_sends=2, mock=True).sum().backward()
    x_ref, w_ref = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    (F.conv1d(x_ref, w_ref, stride=2) * (0.002 * 2)).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(w.grad, w_ref.grad)


@pytest.mark.parametrize("num_expansions", [None, 1, 3, 5])
def test_expanded_conv1d_equals_conv1d_within_tiles(num_expansions: int | None) -> None:
    x, w = random_inputs(2, 3, 60), random_weights(6, 3, 10, high=30)
    expanded = ml.expanded_conv1d(x, w, stride=4, num_expansions=num_expansions)
    plain = ml.conv1d(x, w, stride=4)
    assert expanded.shape == plain.shape
    assert (expanded - plain).abs().max() <= 1  # tile boundaries move with the layout


def test_expanded_conv1d_gradients_equal_conv1d_gradients() -> None:
    x = random_inputs(2, 3, 60)
    grads = []
    for fn in (ml.conv1d, lambda *a, **k: ml.expanded_conv1d(*a, num_expansions=4, **k)):
        w = random_weights(6, 3, 10, high=30)
        w.copy_(torch.arange(w.numel()).view(w.shape) % 41 - 20)
        w.requires_grad_()
        fn(x, w, stride=4, mock=True).sum().backward()
        grads.append(w.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_default_num_expansions_respects_the_array() -> None:
    from bss2.ml._ops import default_num_expansions
    assert default_num_expansions(9, 16, 32, 6, 17) * 16 <= 256
    assert default_num_expansions(1, 200, 5, 1, 100) == 1
    assert default_num_expansions(1, 4, 4, 1, 3) == 3


def test_converting_relu_forward_and_backward() -> None:
    x = torch.tensor([-5.0, 0.0, 3.0, 4.0, 13.0, 127.0, 200.0], requires_grad=True)
    out = ml.converting_relu(x, shift=2)
    assert out.tolist() == [0, 0, 0, 1, 3, 31, 31]
    out.sum().backward()
    assert x.grad.tolist() == [0, 0, 0.25, 0.25, 0.25, 0.25, 0.25]


def test_relu_masks_gradient() -> None:
    x = torch.tensor([-1.0, 2.0], requires_grad=True)
    ml.relu(x).sum().backward()
    assert x.grad.tolist() == [0, 1]


def test_add_saturates_to_int8_with_straight_through_gradient() -> None:
    a = torch.tensor([100.0, -100.0, 5.0], requires_grad=True)
    b = torch.tensor([100.0, -100.0, 5.0], requires_grad=True)
    out = ml.add(a, b)
    assert out.tolist() == [127, -128, 10]
    out.sum().backward()
    assert a.grad.tolist() == b.grad.tolist() == [1, 1, 1]


def test_argmax() -> None:
    x = torch.tensor([[1.0, 5.0, 2.0], [9.0, 0.0, 1.0]])
    assert ml.argmax(x, dim=1).tolist() == [1, 0]
    assert ml.argmax(x).item() == 3


@pytest.mark.parametrize("mock", [False, True])
@pytest.mark.parametrize(("x", "w", "name"), [
    (torch.full((2, 3), 32.0), torch.zeros(3, 2), "input"),
    (torch.full((2, 3), -1.0), torch.zeros(3, 2), "input"),
    (torch.zeros(2, 3), torch.full((3, 2), 64.0), "other"),
    (torch.zeros(2, 3), torch.full((3, 2), -63.6), "other"),
])
def test_out_of_range_raises_overflow_naming_the_tensor(mock: bool, x: torch.Tensor, w: torch.Tensor,
                                                        name: str) -> None:
    with pytest.raises(OverflowError, match=rf"{name} outside the hardware range"):
        ml.matmul(x, w, mock=mock)


def test_values_that_round_into_range_are_accepted() -> None:
    ml.matmul(torch.full((1, 2), 31.4), torch.full((2, 1), -63.4))
    ml.matmul(torch.full((1, 2), -0.4), torch.full((2, 1), 63.0))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_raise_value_error(bad: float) -> None:
    x = torch.ones(2, 3)
    x[1, 1] = bad
    with pytest.raises(ValueError, match="input contains NaN or infinite"):
        ml.matmul(x, torch.ones(3, 2))
    with pytest.raises(ValueError, match="weight contains NaN"):
        ml.conv1d(torch.ones(1, 1, 5), torch.full((1, 1, 2), bad))


def test_argument_errors() -> None:
    x, w = torch.ones(2, 3), torch.ones(3, 2)
    with pytest.raises(TypeError, match="input must have a floating dtype"):
        ml.matmul(x.long(), w)
    with pytest.raises(TypeError, match="other must be a torch.Tensor"):
        ml.matmul(x, [[1.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not match"):
        ml.matmul(x, torch.ones(4, 2))
    with pytest.raises(ValueError, match="other must be 1-D or 2-D"):
        ml.matmul(x, torch.ones(3, 2, 1))
    with pytest.raises(ValueError, match="num_sends must be >= 1"):
        ml.matmul(x, w, num_sends=0)
    with pytest.raises(TypeError, match="num_sends must be an int"):
        ml.matmul(x, w, num_sends=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wait_between_events must be >= 0"):
        ml.matmul(x, w, wait_between_events=-1)
    with pytest.raises(TypeError, match="mock must be a bool"):
        ml.matmul(x, w, mock="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channels"):
        ml.conv1d(torch.ones(1, 2, 10), torch.ones(1, 3, 2))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        ml.conv1d(torch.ones(1, 1, 3), torch.ones(1, 1, 5))
    with pytest.raises(ValueError, match="stride"):
        ml.conv2d(torch.ones(1, 1, 5, 5), torch.ones(1, 1, 2, 2), stride=(1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bias must have shape"):
        ml.conv1d(torch.ones(1, 1, 5), torch.ones(2, 1, 2), torch.ones(3))
    with pytest.raises(ValueError, match="shift must be >= 0"):
        ml.converting_relu(x, shift=-1)


def test_bad_input_does_not_touch_the_hardware() -> None:
    with pytest.raises(OverflowError):
        ml.matmul(torch.full((1, 2), 40.0), torch.ones(2, 1))
    assert not ml.is_initialized()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mock_runs_on_cuda() -> None:
    x, w = random_inputs(64, 300).cuda(), random_weights(300, 40).cuda()
    out = ml.matmul(x, w, mock=True)
    assert out.device == x.device
    ml.set_mock_parameter(NOISELESS)
    assert (ml.matmul(x, w, mock=True).cpu() - ideal(x.cpu(), w.cpu())).abs().max() <= 3
