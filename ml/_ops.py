"""Hardware operations with hxtorch's semantics: matmul, convolutions, activations, saturating add, argmax.

Every operation takes ``num_sends`` (how often each input is sent, >= 1), ``wait_between_events`` (FPGA cycles
between input events, >= 0) and ``mock`` (``True``: the statistical model of :mod:`bss2.ml.mock`; ``False``: the
hardware path through :func:`bss2.ml._hardware.run_matmul`). The backward pass is always computed in software,
straight-through and scaled by ``gain * num_sends`` of the current mock parameter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from . import _hardware, _tracing
from .mock import get_mock_parameter, mock_matmul

_IntPair = int | tuple[int, int]


# ----------------------------------------------------------------------------------------------------------------------
# argument checks


def _check_floating(name: str, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype (its values are rounded to integers), got {value.dtype}")
    return value


def _rounded_in_range(name: str, value: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """Round ``value`` (half to even) and check every entry lies in ``low..high``.

    :raises ValueError: NaN or infinite entries.
    :raises OverflowError: an entry rounds outside the range (nothing is clipped silently).
    """
    rounded = torch.round(value.detach())
    if rounded.numel() == 0:
        return rounded
    vmin, vmax = (float(v) for v in torch.aminmax(rounded))  # NaN propagates, inf shows as inf
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if vmin < low or vmax > high:
        raise OverflowError(
            f"{name} outside the hardware range {low}..{high} after rounding (min {vmin:g}, max {vmax:g}); "
            "scale it (see bss2.ml.nn.scale_input / scale_weight) — nothing is clipped silently")
    return rounded


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_hw_args(num_sends: Any, wait_between_events: Any, mock: Any) -> tuple[int, int, bool]:
    num_sends = _check_int("num_sends", num_sends, 1)
    wait_between_events = _check_int("wait_between_events", wait_between_events, 0)
    if not isinstance(mock, bool):
        raise TypeError(f"mock must be a bool, got {type(mock).__name__}")
    return num_sends, wait_between_events, mock


def _pair(name: str, value: _IntPair) -> tuple[int, int]:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value}")
        return _check_int(name, value[0], 1), _check_int(name, value[1], 1)
    value = _check_int(name, value, 1)
    return value, value


def _single(name: str, value: int | tuple[int]) -> int:
    if isinstance(value, tuple):
        if len(value) != 1:
            raise ValueError(f"{name} must be an int or a 1-tuple, got {value}")
        value = value[0]
    return _check_int(name, value, 1)


# ----------------------------------------------------------------------------------------------------------------------
# the autograd core


def _hardware_matmul(x: torch.Tensor, weight: torch.Tensor, num_sends: int, wait_between_events: int) -> torch.Tensor:
    inputs = x.detach().to("cpu", torch.float64).numpy().astype(np.int64)
    weights = weight.detach().to("cpu", torch.float64).numpy().astype(np.int64)
    result = _hardware.run_matmul(inputs, weights, num_sends, wait_between_events)
    return torch.from_numpy(result).to(device=x.device, dtype=x.dtype)


class _MatMul(torch.autograd.Function):
    """(batch, N) @ (N, M) on the chip or the mock; software straight-through backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, x_int: torch.Tensor, weight_int: torch.Tensor,
                num_sends: int, wait_between_events: int, mock: bool) -> torch.Tensor:  # type: ignore[override]
        # The backward uses the unrounded operands: rounding is straight-through.
        ctx.save_for_backward(x, weight)
        ctx.num_sends = num_sends
        if mock:
            return mock_matmul(x_int, weight_int, num_sends, get_mock_parameter())
        return _hardware_matmul(x_int, weight_int, num_sends, wait_between_events)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        scaled = grad_output * (get_mock_parameter().gain * ctx.num_sends)
        grad_x = scaled @ weight.t() if ctx.needs_input_grad[0] else None
        grad_weight = x.t() @ scaled if ctx.needs_input_grad[1] else None
        return grad_x, grad_weight, None, None, None, None, None


def _matmul_2d(x: torch.Tensor, weight: torch.Tensor, num_sends: int, wait_between_events: int,
               mock: bool) -> torch.Tensor:
    """(batch, N) @ (N, M); the operands were range-checked, rounding here is cheap and exact."""
    out = _MatMul.apply(x, weight, torch.round(x.detach()), torch.round(weight.detach()), num_sends,
                        wait_between_events, mock)
    assert isinstance(out, torch.Tensor)
    return out


def _hw_params(num_sends: int, wait_between_events: int, mock: bool) -> dict[str, Any]:
    return {"num_sends": num_sends, "wait_between_events": wait_between_events, "mock": mock}


def _int_array(weight: torch.Tensor) -> np.ndarray:
    return torch.round(weight.detach()).to("cpu", torch.float64).numpy().astype(np.int8)


def _float_array(bias: torch.Tensor | None) -> dict[str, np.ndarray]:
    return {} if bias is None else {"bias": bias.detach().to("cpu", torch.float32).numpy()}


# ----------------------------------------------------------------------------------------------------------------------
# public operations


def matmul(input: torch.Tensor, other: torch.Tensor, num_sends: int = 1, wait_between_events: int = 5,
           mock: bool = False) -> torch.Tensor:
    """Multiply ``input`` (values 0..31) by ``other`` (values -63..63) on the chip.

    :param input: (N,), (batch, N) or (..., N); more than 2 dims are flattened to 2-D and reshaped back.
    :param other: (N, M) or (N,) weights.
    :returns: (..., M) (or (...) for a 1-D ``other``) with integer values in -128..127, scaled by
        ``gain * num_sends`` relative to ``input @ other``.
    :raises OverflowError: an entry of ``input`` or ``other`` rounds outside its hardware range.
    """
    _check_floating("input", input)
    _check_floating("other", other)
    num_sends, wait_between_events, mock = _check_hw_args(num_sends, wait_between_events, mock)
    if input.dim() < 1:
        raise ValueError("input must have at least 1 dimension, got a scalar")
    if other.dim() not in (1, 2):
        raise ValueError(f"other must be 1-D or 2-D, got shape {tuple(other.shape)}")
    if input.shape[-1] != other.shape[0]:
        raise ValueError(f"input's last dimension ({input.shape[-1]}) does not match other's first dimension "
                         f"({other.shape[0]})")
    if input.device != other.device:
        raise ValueError(f"input and other are on different devices ({input.device}, {other.device})")
    input_int = _rounded_in_range("input", input, _hardware.INPUT_MIN, _hardware.INPUT_MAX)
    other_int = _rounded_in_range("other", other, _hardware.WEIGHT_MIN, _hardware.WEIGHT_MAX).to(input.dtype)
    weight = other.to(input.dtype)
    weight_2d = weight.unsqueeze(1) if weight.dim() == 1 else weight
    weight_2d_int = other_int.unsqueeze(1) if other_int.dim() == 1 else other_int
    leading = input.shape[:-1]
    out = _MatMul.apply(input.reshape(-1, input.shape[-1]), weight_2d, input_int.reshape(-1, input.shape[-1]),
                        weight_2d_int, num_sends, wait_between_events, mock)
    out = out.reshape(*leading, weight_2d.shape[1])
    if other.dim() == 1:
        out = out.squeeze(-1)
    if _tracing.active() is not None:
        _tracing.record("matmul", [input], out, _hw_params(num_sends, wait_between_events, mock),
                        {"weight": _int_array(weight_2d)})
    return out


def _conv_checks(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spatial: int,
                 num_sends: int, wait_between_events: int, mock: bool) -> tuple[torch.Tensor, bool, int, int, bool]:
    _check_floating("input", input)
    _check_floating("weight", weight)
    if bias is not None:
        _check_floating("bias", bias)
    hw = _check_hw_args(num_sends, wait_between_events, mock)
    if weight.dim() != spatial + 2:
        raise ValueError(f"weight must have {spatial + 2} dims (out_channels, in_channels, kernel...), "
                         f"got shape {tuple(weight.shape)}")
    unbatched = input.dim() == spatial + 1
    if unbatched:
        input = input.unsqueeze(0)
    if input.dim() != spatial + 2:
        raise ValueError(f"input must have {spatial + 1} or {spatial + 2} dims, got shape {tuple(input.shape)}")
    if input.shape[1] != weight.shape[1]:
        raise ValueError(f"input has {input.shape[1]} channels but weight expects {weight.shape[1]}")
    if any(size < kernel for size, kernel in zip(input.shape[2:], weight.shape[2:])):
        raise ValueError(f"input's spatial size {tuple(input.shape[2:])} is smaller than the kernel "
                         f"{tuple(weight.shape[2:])}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    _rounded_in_range("input", input, _hardware.INPUT_MIN, _hardware.INPUT_MAX)
    _rounded_in_range("weight", weight, _hardware.WEIGHT_MIN, _hardware.WEIGHT_MAX)
    return input, unbatched, *hw


def _add_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if bias is None:
        return out
    return out + bias.to(out.dtype).view(1, -1, *([1] * (out.dim() - 2)))


def conv1d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: int = 1,
           num_sends: int = 1, wait_between_events: int = 5, mock: bool = False) -> torch.Tensor:
    """1-D convolution on the chip: the input is unfolded and multiplied with the flattened kernel.

    :param input: (batch, C, L) or (C, L), values 0..31.
    :param weight: (O, C, k), values -63..63. No groups, padding or dilation.
    :param bias: optional (O,), added in software.
    :returns: (batch, O, (L - k) // stride + 1) (batch dim dropped for unbatched input).
    """
    input, unbatched, num_sends, wait_between_events, mock = _conv_checks(
        input, weight, bias, 1, num_sends, wait_between_events, mock)
    stride = _single("stride", stride)
    batch, channels, _ = input.shape
    out_channels, _, kernel = weight.shape
    columns = input.unfold(2, kernel, stride)  # (batch, C, L_out, k)
    length = columns.shape[2]
    rows = columns.permute(0, 2, 1, 3).reshape(batch * length, channels * kernel)
    weight_2d = weight.to(input.dtype).reshape(out_channels, channels * kernel).t()
    out = _matmul_2d(rows, weight_2d, num_sends, wait_between_events, mock)
    out = _add_bias(out.view(batch, length, out_channels).permute(0, 2, 1), bias)
    # Contiguous, so a following flatten is a view the tracer can follow.
    out = out.contiguous()
    if unbatched:
        out = out.squeeze(0)
    if _tracing.active() is not None:
        _tracing.record("conv1d", [input], out, {"stride": stride, "kernel": kernel,
                                                 **_hw_params(num_sends, wait_between_events, mock)},
                        {"weight": _int_array(weight_2d), **_float_array(bias)})
    return out


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: _IntPair = 1,
           num_sends: int = 1, wait_between_events: int = 5, mock: bool = False) -> torch.Tensor:
    """2-D convolution on the chip via unfolding (im2col).

    :param input: (batch, C, H, W) or (C, H, W), values 0..31.
    :param weight: (O, C, kh, kw), values -63..63. No groups, padding or dilation.
    :param stride: int or (sh, sw).
    :returns: (batch, O, (H - kh) // sh + 1, (W - kw) // sw + 1).
    """
    input, unbatched, num_sends, wait_between_events, mock = _conv_checks(
        input, weight, bias, 2, num_sends, wait_between_events, mock)
    strides = _pair("stride", stride)
    batch, channels, height, width = input.shape
    out_channels, _, kh, kw = weight.shape
    out_h, out_w = (height - kh) // strides[0] + 1, (width - kw) // strides[1] + 1
    columns = torch.nn.functional.unfold(input, (kh, kw), stride=strides)  # (batch, C*kh*kw, out_h*out_w)
    rows = columns.transpose(1, 2).reshape(batch * out_h * out_w, channels * kh * kw)
    weight_2d = weight.to(input.dtype).reshape(out_channels, -1).t()
    out = _matmul_2d(rows, weight_2d, num_sends, wait_between_events, mock)
    out = _add_bias(out.view(batch, out_h * out_w, out_channels).permute(0, 2, 1)
                    .reshape(batch, out_channels, out_h, out_w), bias)
    # Contiguous, so a following flatten is a view the tracer can follow.
    out = out.contiguous()
    if unbatched:
        out = out.squeeze(0)
    if _tracing.active() is not None:
        _tracing.record("conv2d", [input], out, {"stride": list(strides), "kernel": [kh, kw],
                                                 **_hw_params(num_sends, wait_between_events, mock)},
                        {"weight": _int_array(weight_2d), **_float_array(bias)})
    return out


def default_num_expansions(in_channels: int, out_channels: int, kernel_size: int, stride: int,
                           output_length: int) -> int:
    """The largest number of kernel copies that fits the array's 256 columns without needing more 128-row tiles
    than a single kernel, and no more than there are output positions."""
    rows_single = -(-in_channels * kernel_size // _hardware.ARRAY_ROWS)
    expansions = 1
    while (expansions + 1 <= output_length
           and (expansions + 1) * out_channels <= _hardware.ARRAY_COLUMNS
           and -(-in_channels * (kernel_size + expansions * stride) // _hardware.ARRAY_ROWS) <= rows_single):
        expansions += 1
    return expansions


def _expand_kernel(weight: torch.Tensor, expansions: int, stride: int) -> torch.Tensor:
    """(O, C, k) -> (C * (k + (E-1) * stride), E * O): E copies, each shifted by ``stride`` samples."""
    out_channels, channels, kernel = weight.shape
    span = kernel + (expansions - 1) * stride
    shifted = [torch.nn.functional.pad(weight, (e * stride, span - kernel - e * stride)) for e in range(expansions)]
    stacked = torch.stack(shifted)  # (E, O, C, span)
    return stacked.permute(2, 3, 0, 1).reshape(channels * span, expansions * out_channels)


def expanded_conv1d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: int = 1,
                    num_expansions: int | None = None, num_sends: int = 1, wait_between_events: int = 5,
                    mock: bool = False) -> torch.Tensor:
    """1-D convolution with ``num_expansions`` shifted copies of the kernel side by side on the array, so one
    input vector computes that many neighbouring output positions (fewer, longer vectors; same result shape as
    :func:`conv1d`). The copies share the one kernel; ``None`` picks :func:`default_num_expansions`.
    """
    input, unbatched, num_sends, wait_between_events, mock = _conv_checks(
        input, weight, bias, 1, num_sends, wait_between_events, mock)
    stride = _single("stride", stride)
    batch, channels, length_in = input.shape
    out_channels, _, kernel = weight.shape
    length = (length_in - kernel) // stride + 1
    if num_expansions is None:
        num_expansions = default_num_expansions(channels, out_channels, kernel, stride, length)
    expansions = _check_int("num_expansions", num_expansions, 1)
    span = kernel + (expansions - 1) * stride
    groups = -(-length // expansions)
    needed = (groups - 1) * expansions * stride + span
    padded = torch.nn.functional.pad(input, (0, max(0, needed - length_in)))
    columns = padded.unfold(2, span, expansions * stride)[:, :, :groups]  # (batch, C, groups, span)
    rows = columns.permute(0, 2, 1, 3).reshape(batch * groups, channels * span)
    weight_2d = _expand_kernel(weight.to(input.dtype), expansions, stride)
    out = _matmul_2d(rows, weight_2d, num_sends, wait_between_events, mock)
    out = out.view(batch, groups * expansions, out_channels)[:, :length].permute(0, 2, 1)
    out = _add_bias(out, bias)
    # Contiguous, so a following flatten is a view the tracer can follow.
    out = out.contiguous()
    if unbatched:
        out = out.squeeze(0)
    if _tracing.active() is not None:
        _tracing.record("expanded_conv1d", [input], out,
                        {"stride": stride, "kernel": kernel, "num_expansions": expansions,
                         **_hw_params(num_sends, wait_between_events, mock)},
                        {"weight": _int_array(weight_2d), **_float_array(bias)})
    return out


def relu(input: torch.Tensor) -> torch.Tensor:
    """ReLU on the host; its gradient is masked by ``input > 0``."""
    _check_floating("input", input)
    out = torch.relu(input)
    if _tracing.active() is not None:
        _tracing.record("relu", [input], out, {}, {})
    return out


class _ConvertingReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, shift: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.shift = shift
        return torch.floor(x / float(2 ** shift)).clamp_(_hardware.INPUT_MIN, _hardware.INPUT_MAX)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * (x > 0).to(grad_output.dtype) / float(2 ** ctx.shift), None


def converting_relu(input: torch.Tensor, shift: int = 2) -> torch.Tensor:
    """ReLU, right shift by ``shift`` bits (floor division by 2**shift), clip to 0..31: turns an output (-128..127)
    into the next layer's input. Gradient: masked by ``input > 0`` and divided by 2**shift."""
    _check_floating("input", input)
    shift = _check_int("shift", shift, 0)
    out = _ConvertingReLU.apply(input, shift)
    assert isinstance(out, torch.Tensor)
    if _tracing.active() is not None:
        _tracing.record("converting_relu", [input], out, {"shift": shift}, {})
    return out


class _SaturatingAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.shapes = a.shape, b.shape
        return torch.add(a, b).clamp_(_hardware.OUTPUT_MIN, _hardware.OUTPUT_MAX)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        shape_a, shape_b = ctx.shapes
        return grad_output.sum_to_size(shape_a), grad_output.sum_to_size(shape_b)


def add(input: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Saturating int8 addition: ``clamp(input + other, -128, 127)`` (broadcasting); straight-through gradient."""
    _check_floating("input", input)
    _check_floating("other", other)
    try:
        torch.broadcast_shapes(input.shape, other.shape)
    except RuntimeError as error:
        raise ValueError(f"input {tuple(input.shape)} and other {tuple(other.shape)} do not broadcast") from error
    out = _SaturatingAdd.apply(input, other.to(input.dtype))
    assert isinstance(out, torch.Tensor)
    if _tracing.active() is not None:
        _tracing.record("add", [input, other], out, {}, {})
    return out


def argmax(input: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """Index of the largest value (as :func:`torch.argmax`); not differentiable."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    out = torch.argmax(input, dim=dim, keepdim=keepdim)
    if _tracing.active() is not None:
        _tracing.record("argmax", [input], out, {"dim": dim, "keepdim": keepdim}, {})
    return out


def mean_groups(input: torch.Tensor, size: int) -> torch.Tensor:
    """Average each run of ``size`` neighbouring entries of the last dimension (the ``avg`` of :class:`Linear`)."""
    size = _check_int("size", size, 1)
    if size == 1:
        return input
    out = input.reshape(*input.shape[:-1], input.shape[-1] // size, size).sum(-1) / size
    if _tracing.active() is not None:
        _tracing.record("mean_groups", [input], out, {"size": size}, {})
    return out


def add_bias(input: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Add a software bias over the last dimension (the bias of :class:`Linear`)."""
    out = input + bias.to(input.dtype)
    if _tracing.active() is not None:
        _tracing.record("bias", [input], out, {}, {"bias": bias.detach().to("cpu", torch.float32).numpy()})
    return out
