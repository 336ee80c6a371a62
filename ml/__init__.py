"""``bss2.ml``: PyTorch on the BrainScaleS-2 analog matrix multiplication (hxtorch's API).

Operations (:func:`matmul`, :func:`conv1d`, :func:`conv2d`, :func:`expanded_conv1d`, :func:`relu`,
:func:`converting_relu`, :func:`add`, :func:`argmax`) run on the chip (``mock=False``) or on a statistical model
(``mock=True``, parameters :class:`MockParameter`); backward passes are computed in software. Layers live in
:mod:`bss2.ml.nn`, data sets in :mod:`bss2.ml.datasets`. Inputs are 0..31, weights -63..63, outputs -128..127.
"""

from ._hardware import hardware, init_hardware, is_initialized, release_hardware
from ._ops import add, argmax, conv1d, conv2d, converting_relu, expanded_conv1d, matmul, relu
from ._tracing import InferenceTracer, Trace, inference_trace, load_trace, replay
from .mock import MockParameter, get_mock_parameter, measure_mock_parameter, set_mock_parameter

from . import nn  # noqa: E402  (after the ops it builds on)

__all__ = [
    "matmul", "conv1d", "conv2d", "expanded_conv1d", "relu", "converting_relu", "add", "argmax",
    "MockParameter", "get_mock_parameter", "set_mock_parameter", "measure_mock_parameter",
    "init_hardware", "release_hardware", "hardware", "is_initialized",
    "InferenceTracer", "inference_trace", "load_trace", "replay", "Trace", "nn",
]
