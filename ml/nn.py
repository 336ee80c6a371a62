"""Drop-in replacements for torch layers that compute on the chip (or its mock).

They subclass :class:`torch.nn.Linear`, :class:`torch.nn.Conv1d` and :class:`torch.nn.Conv2d`, so parameters and
``state_dict`` keys are torch's and a trained torch model loads directly. Extra keyword arguments:

- ``num_sends`` (>= 1, or ``None``: chosen at construction from the mock gain with :func:`default_num_sends`),
- ``wait_between_events`` (FPGA cycles, default 5), ``mock`` (``False``: hardware path; may be changed later),
- keyword-only ``input_transform`` (applied to the input first, e.g. :func:`scale_input`) and
  ``weight_transform`` (applied to the weight before each use; default :func:`clamp_weight_`).

Weights are used in hardware units (-63..63) and inputs in 0..31: torch's default initialisation (|w| < 1) rounds
mostly to zero, so initialise or scale weights for the hardware range before training from scratch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import _hardware, _ops
from .mock import get_mock_parameter

Transform = Callable[[torch.Tensor], torch.Tensor]


def scale_input(x: torch.Tensor) -> torch.Tensor:
    """Scale so the largest entry becomes 31 (the largest input): ``x * 31 / max(x)``."""
    return x * (_hardware.INPUT_MAX / x.max())


def scale_weight(weight: torch.Tensor) -> torch.Tensor:
    """Scale so the largest magnitude becomes 63 (the largest weight): ``w * 63 / max|w|``."""
    return weight * (_hardware.WEIGHT_MAX / weight.abs().max())


def clamp_weight_(weight: torch.Tensor) -> torch.Tensor:
    """Clamp a weight tensor in place to -63..63 (outside autograd) and return it."""
    with torch.no_grad():
        weight.clamp_(_hardware.WEIGHT_MIN, _hardware.WEIGHT_MAX)
    return weight


def default_num_sends(in_features: int, gain: float | None = None) -> int:
    """The number of sends that lets a full-scale input (31) at full-scale weights (63) over ``in_features`` rows
    just reach the output range (127 LSB): ``max(1, floor(127 / (gain * in_features * 31 * 63)))``."""
    gain = get_mock_parameter().gain if gain is None else gain
    full_scale = gain * in_features * _hardware.INPUT_MAX * _hardware.WEIGHT_MAX
    return max(1, math.floor(_hardware.OUTPUT_MAX / full_scale))


class _HardwareLayer:
    """Stores and reports the hardware arguments shared by all layers."""

    num_sends: int
    wait_between_events: int
    mock: bool
    input_transform: Transform | None
    weight_transform: Transform | None

    def _init_hardware_args(self, rows: int, num_sends: int | None, wait_between_events: int, mock: bool,
                            input_transform: Transform | None, weight_transform: Transform | None) -> None:
        self.num_sends = default_num_sends(rows) if num_sends is None else _ops._check_int("num_sends", num_sends, 1)
        self.wait_between_events = _ops._check_int("wait_between_events", wait_between_events, 0)
        if not isinstance(mock, bool):
            raise TypeError(f"mock must be a bool, got {type(mock).__name__}")
        self.mock = mock
        self.input_transform = input_transform
        self.weight_transform = weight_transform

    def _hardware_kwargs(self) -> dict[str, Any]:
        return {"num_sends": self.num_sends, "wait_between_events": self.wait_between_events, "mock": self.mock}

    def _transform_input(self, input: torch.Tensor) -> torch.Tensor:
        return input if self.input_transform is None else self.input_transform(input)

    def _transformed_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return weight if self.weight_transform is None else self.weight_transform(weight)

    def _hardware_repr(self) -> str:
        return f"num_sends={self.num_sends}, wait_between_events={self.wait_between_events}, mock={self.mock}"


class Linear(torch.nn.Linear, _HardwareLayer):
    """:class:`torch.nn.Linear` on the chip: ``y = (x @ W.T)`` scaled by ``gain * num_sends`` (+ bias in software).

    :param avg: each output is computed by ``avg`` neuron columns with the same weights and averaged (against
        fixed-pattern noise); uses ``out_features * avg`` columns.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, num_sends: int | None = None,
                 wait_between_events: int = 5, mock: bool = False, *, avg: int = 1,
                 input_transform: Transform | None = None, weight_transform: Transform | None = clamp_weight_,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_hardware_args(in_features, num_sends, wait_between_events, mock, input_transform, weight_transform)
        self.avg = _ops._check_int("avg", avg, 1)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight = self._transformed_weight(self.weight).t()
        if self.avg > 1:
            weight = weight.repeat_interleave(self.avg, dim=1)
        out = _ops.matmul(self._transform_input(input), weight, **self._hardware_kwargs())
        out = _ops.mean_groups(out, self.avg)
        return out if self.bias is None else _ops.add_bias(out, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._hardware_repr()}, avg={self.avg}"


def _no_padding(layer: str, padding: Any, dilation: Any, groups: int) -> None:
    if padding not in (0, (0,), (0, 0)) or dilation not in (1, (1,), (1, 1)) or groups != 1:
        raise ValueError(f"{layer}: padding, dilation and groups are not supported on the chip")


class Conv1d(torch.nn.Conv1d, _HardwareLayer):
    """:class:`torch.nn.Conv1d` on the chip (unfolded into a matmul; no padding, dilation or groups)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True,
                 num_sends: int | None = None, wait_between_events: int = 5, mock: bool = False, *,
                 input_transform: Transform | None = None, weight_transform: Transform | None = clamp_weight_,
                 device: Any = None, dtype: Any = None) -> None:
        _no_padding(type(self).__name__, padding, dilation, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias, device=device,
                         dtype=dtype)
        rows = in_channels * self.kernel_size[0]
        self._init_hardware_args(rows, num_sends, wait_between_events, mock, input_transform, weight_transform)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _ops.conv1d(self._transform_input(input), self._transformed_weight(self.weight), self.bias,
                           self.stride[0], **self._hardware_kwargs())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._hardware_repr()}"


class ExpandedConv1d(Conv1d):
    """:class:`Conv1d` computed with ``num_expansions`` shifted kernel copies side by side on the array
    (see :func:`bss2.ml.expanded_conv1d`); same parameters and ``state_dict`` as :class:`torch.nn.Conv1d`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True,
                 num_sends: int | None = None, wait_between_events: int = 5, mock: bool = False, *,
                 num_expansions: int | None = None, input_transform: Transform | None = None,
                 weight_transform: Transform | None = clamp_weight_, device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, num_sends,
                         wait_between_events, mock, input_transform=input_transform,
                         weight_transform=weight_transform, device=device, dtype=dtype)
        self.num_expansions = None if num_expansions is None else _ops._check_int("num_expansions",
                                                                                   num_expansions, 1)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _ops.expanded_conv1d(self._transform_input(input), self._transformed_weight(self.weight), self.bias,
                                    self.stride[0], self.num_expansions, **self._hardware_kwargs())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_expansions={self.num_expansions}"


class Conv2d(torch.nn.Conv2d, _HardwareLayer):
    """:class:`torch.nn.Conv2d` on the chip (unfolded into a matmul; no padding, dilation or groups)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int = 0, dilation: int = 1, groups: int = 1,
                 bias: bool = True, num_sends: int | None = None, wait_between_events: int = 5, mock: bool = False,
                 *, input_transform: Transform | None = None, weight_transform: Transform | None = clamp_weight_,
                 device: Any = None, dtype: Any = None) -> None:
        _no_padding(type(self).__name__, padding, dilation, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias, device=device,
                         dtype=dtype)
        rows = in_channels * self.kernel_size[0] * self.kernel_size[1]
        self._init_hardware_args(rows, num_sends, wait_between_events, mock, input_transform, weight_transform)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _ops.conv2d(self._transform_input(input), self._transformed_weight(self.weight), self.bias,
                           tuple(self.stride), **self._hardware_kwargs())  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._hardware_repr()}"


class ReLU(torch.nn.Module):
    """:func:`bss2.ml.relu` as a module."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _ops.relu(input)


class ConvertingReLU(torch.nn.Module):
    """:func:`bss2.ml.converting_relu` as a module: ReLU, shift right by ``shift`` bits, clip to 0..31."""

    def __init__(self, shift: int = 2) -> None:
        super().__init__()
        self.shift = _ops._check_int("shift", shift, 0)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _ops.converting_relu(input, self.shift)

    def extra_repr(self) -> str:
        return f"shift={self.shift}"


def set_mock(module: torch.nn.Module, mock: bool) -> torch.nn.Module:
    """Switch every hardware layer in ``module`` to mock (``True``) or the hardware path (``False``)."""
    for layer in module.modules():
        if isinstance(layer, _HardwareLayer):
            layer.mock = mock
    return module


__all__ = ["Linear", "Conv1d", "Conv2d", "ExpandedConv1d", "ReLU", "ConvertingReLU", "scale_input", "scale_weight",
           "clamp_weight_", "default_num_sends", "set_mock"]
