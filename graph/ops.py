"""Compute ops: functions that add hagen-mode computations to a :class:`GraphBuilder`.

``matmul`` partitions a weight matrix (N inputs x M outputs, -63..63) into synapse-array tiles of at
most 128 signed rows x 256 columns. Every tile is one chain in its own execution instance::

    DataInput(UInt5, rows) -> MACSynapseArrayView -> NeuronView -> CADCMembraneReadoutView -> DataOutput(Int8)

fed by the slice ``x[r0:r1]`` of the operand. Tiles are numbered row-major (row block major) and get
``synram = k % 2`` and ``chip = (k // 2) % num_chips``, a round-robin placement hint the executor may
follow. A final host instance sums the row blocks of each column block (:class:`Addition`, saturating
once at the end) and concatenates the column blocks (:class:`Concatenation`).

Convolutions are matrix multiplications of an unfolded input: the weight is unfolded into a matrix here;
the input unfolding is an index map (:func:`unfold_indices_1d`, :func:`unfold_indices_2d`,
:func:`expanded_unfold_indices_1d`) that the caller applies with :func:`apply_unfold`, turning each output
position into one row of the batch.
"""

from __future__ import annotations

import math

import numpy as np

from bss2.hal.wire import MAX_SPIKE_DELAY

from .errors import GraphTypeError, GraphValueError
from .graph import ExecutionInstance, Graph, GraphBuilder, VertexDescriptor
from .ports import ConnectionType
from .vertices import (
    Addition,
    ArgMax,
    CADCMembraneReadoutView,
    Concatenation,
    ConvertingReLU,
    DataInput,
    DataOutput,
    ExternalInput,
    MACSynapseArrayView,
    NeuronView,
    ReLU,
    Subtraction,
    frozen,
    is_integer,
)

CT = ConnectionType
#: signed inputs (synapse drivers) per tile
TILE_ROWS = 128
#: outputs (neuron columns) per tile
TILE_COLUMNS = 256
WEIGHT_MIN, WEIGHT_MAX = -63, 63
INPUT_MIN, INPUT_MAX = 0, 31


def _readonly_int8(weights: np.ndarray) -> np.ndarray:
    """The weights as a read-only int8 array; copied only when not already int8 and read-only."""
    try:
        array = np.asarray(weights)
    except (ValueError, TypeError) as error:  # ragged nested sequences
        raise GraphValueError(f"matmul weights must be a 1-d or 2-d integer array: {error}") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.size == 0:
        raise GraphValueError(f"matmul weights must be a non-empty 1-d or 2-d array, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise GraphValueError(f"matmul weights must be finite integers in [{WEIGHT_MIN}, {WEIGHT_MAX}], got "
                                  f"{array[~np.isfinite(array)].flat[0]}")
        if array.dtype.kind != "f" or not np.all(np.floor(array) == array):
            raise GraphTypeError(f"matmul weights must be integers, got dtype {array.dtype}")
        # whole floats: range-checked as they are, cast to int8 below
    low, high = array.min(), array.max()  # numpy scalars: a huge whole float is named as it is
    if low < WEIGHT_MIN or high > WEIGHT_MAX:
        bad = low if low < WEIGHT_MIN else high
        raise GraphValueError(f"matmul weights contain {bad}, out of range [{WEIGHT_MIN}, {WEIGHT_MAX}]")
    if array.dtype != np.int8 or not frozen(array):
        # one copy of the whole matrix; every tile then holds a view of it
        array = array.astype(np.int8, copy=True)
        array.flags.writeable = False
    return array


def _range(n: int, cache: dict[int, np.ndarray]) -> np.ndarray:
    array = cache.get(n)
    if array is None:
        array = np.arange(n, dtype=np.int64)
        array.flags.writeable = False
        cache[n] = array
    return array


def tile_bounds(n: int, block: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of the blocks of at most ``block`` entries covering ``range(n)``."""
    return [(start, min(start + block, n)) for start in range(0, n, block)]


def matmul(
    builder: GraphBuilder,
    x: int,
    weights: np.ndarray,
    num_sends: int = 1,
    wait_between_events: int = 5,
    num_chips: int = 1,
    combine_instance: ExecutionInstance | None = None,
) -> VertexDescriptor:
    """Add ``y = x @ weights`` and return the descriptor of ``y`` (DataInt8, M entries).

    ``x``: a vertex giving DataUInt5 of N entries (0..31); ``weights``: (N, M) integers -63..63 (1-d: M=1);
    ``num_sends`` 1..255; ``wait_between_events`` in FPGA cycles (8 ns), 1..63; ``num_chips`` (>= 1)
    for the round-robin chip hint. The sums of row blocks run in ``combine_instance`` (default: a new
    instance after all tiles).
    """
    w = _readonly_int8(weights)
    n, m = w.shape
    port = builder.output_port(x)
    if port.type is not CT.DataUInt5 or port.size != n:
        raise GraphValueError(f"matmul: x must give DataUInt5[{n}] (weights have {n} rows), got {port}")
    for name, value in (("num_sends", num_sends), ("wait_between_events", wait_between_events), ("num_chips", num_chips)):
        if not is_integer(value):
            raise GraphTypeError(f"matmul: {name} must be an integer, got {value!r}")
    if not 1 <= num_sends <= 255:
        raise GraphValueError(f"matmul: num_sends = {num_sends} is out of range [1, 255]")
    if not 1 <= wait_between_events <= MAX_SPIKE_DELAY:
        raise GraphValueError(f"matmul: wait_between_events = {wait_between_events} is out of range [1, {MAX_SPIKE_DELAY}] "
                              "(the delay field of a SPIKES word)")
    if num_chips < 1:
        raise GraphValueError(f"matmul: num_chips = {num_chips} is out of range [1, inf)")
    ranges: dict[int, np.ndarray] = {}
    row_blocks = tile_bounds(n, TILE_ROWS)
    column_blocks = tile_bounds(m, TILE_COLUMNS)
    outputs: list[list[VertexDescriptor]] = [[] for _ in column_blocks]
    add = builder.add
    k = 0
    # vertices equal for many tiles are built once (they are immutable)
    data_outputs = [DataOutput(CT.Int8, c1 - c0) for c0, c1 in column_blocks]
    for r0, r1 in row_blocks:
        rows = _range(r1 - r0, ranges)
        data_input = DataInput(CT.UInt5, r1 - r0)
        operand = [x[r0:r1]] if (r0, r1) != (0, n) else [x]
        for j, (c0, c1) in enumerate(column_blocks):
            columns = _range(c1 - c0, ranges)
            synram = k % 2
            instance = builder.new_execution_instance(chip=(k // 2) % num_chips)
            # the whole operand was validated above: build the tile's vertices without re-checking
            view = MACSynapseArrayView._trusted(synram=synram, rows=rows, columns=columns, weights=w[r0:r1, c0:c1],
                                                num_sends=num_sends, wait_between_events=wait_between_events)
            neurons = NeuronView._trusted(row=synram, columns=columns, capmem_names=(), capmem_values=None,
                                          address_out=None, enable_spike_out=None, refractory_time=None)
            readout = CADCMembraneReadoutView._trusted(synram=synram, columns=columns, mode="hagen", period=250)
            d = add(data_input, operand, instance)
            d = add(view, [d], instance)
            d = add(neurons, [d], instance)
            d = add(readout, [d], instance)
            outputs[j].append(add(data_outputs[j], [d], instance))
            k += 1
    if k == 1:
        return outputs[0][0]
    instance = combine_instance if combine_instance is not None else builder.new_execution_instance(chip=0)
    blocks = []
    for j, (c0, c1) in enumerate(column_blocks):
        if len(outputs[j]) == 1:
            blocks.append(outputs[j][0])
        else:
            blocks.append(add(Addition(c1 - c0, len(outputs[j])), outputs[j], instance))
    if len(blocks) == 1:
        return blocks[0]
    return add(Concatenation(CT.DataInt8, tuple(c1 - c0 for c0, c1 in column_blocks)), blocks, instance)


def _transformation_instance(builder: GraphBuilder, x: int, instance: ExecutionInstance | None) -> ExecutionInstance:
    return instance if instance is not None else builder.execution_instance(x)


def relu(builder: GraphBuilder, x: int, instance: ExecutionInstance | None = None) -> VertexDescriptor:
    """Add ``max(x, 0)`` on a DataInt8 vertex (in ``instance``, default: x's instance)."""
    return builder.add(ReLU(builder.output_port(x).size), [x], _transformation_instance(builder, x, instance))


def converting_relu(builder: GraphBuilder, x: int, shift: int = 2,
                    instance: ExecutionInstance | None = None) -> VertexDescriptor:
    """Add ``clip(relu(x) >> shift, 0, 31)`` (DataInt8 -> DataUInt5): the interface between layers."""
    return builder.add(ConvertingReLU(builder.output_port(x).size, shift), [x],
                       _transformation_instance(builder, x, instance))


def add(builder: GraphBuilder, *xs: int, instance: ExecutionInstance | None = None) -> VertexDescriptor:
    """Add the saturating int8 sum of DataInt8 vertices of equal size."""
    if not xs:
        raise GraphValueError("add needs at least one operand")
    return builder.add(Addition(builder.output_port(xs[0]).size, len(xs)), list(xs),
                       _transformation_instance(builder, xs[-1], instance))


def subtract(builder: GraphBuilder, a: int, b: int, instance: ExecutionInstance | None = None) -> VertexDescriptor:
    """Add the saturating int8 difference ``a - b``."""
    return builder.add(Subtraction(builder.output_port(a).size), [a, b], _transformation_instance(builder, b, instance))


def argmax(builder: GraphBuilder, x: int, instance: ExecutionInstance | None = None) -> VertexDescriptor:
    """Add the index of the largest entry of a DataInt8 vertex (DataInt32[1])."""
    return builder.add(ArgMax(builder.output_port(x).size), [x], _transformation_instance(builder, x, instance))


def matmul_graph(weights: np.ndarray, num_sends: int = 1, wait_between_events: int = 5,
                 num_chips: int = 1) -> tuple[Graph, VertexDescriptor, VertexDescriptor]:
    """A complete graph for ``x @ weights``: returns ``(graph, input_descriptor, output_descriptor)``.

    The input is an :class:`ExternalInput` (DataUInt5, N entries) in instance 0.
    """
    builder = GraphBuilder()
    weights = _readonly_int8(weights)  # checked (and made immutable) once, before anything is built
    n = weights.shape[0]
    x = builder.add(ExternalInput(CT.DataUInt5, n, "x"), execution_instance=builder.new_execution_instance())
    y = matmul(builder, x, weights, num_sends, wait_between_events, num_chips)
    return builder.build(), x, y


# ------------------------------------------------------------------------------------- unfolding


def apply_unfold(x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Gather ``x`` ``(batch, *input_shape)`` with an index map into ``(batch * positions, features)``.

    Index -1 stands for zero padding.
    """
    flat = np.asarray(x).reshape(np.shape(x)[0], -1)
    padded = np.concatenate([flat, np.zeros((flat.shape[0], 1), dtype=flat.dtype)], axis=1)
    gathered = padded[:, np.where(indices < 0, flat.shape[1], indices)]
    return gathered.reshape(-1, indices.shape[1])


def _conv_out(size: int, kernel: int, stride: int, what: str) -> int:
    if kernel < 1 or stride < 1:
        raise GraphValueError(f"{what}: kernel size and stride must be >= 1, got {kernel}, {stride}")
    if size < kernel:
        raise GraphValueError(f"{what}: input size {size} is smaller than the kernel {kernel}")
    return (size - kernel) // stride + 1


def unfold_indices_1d(in_channels: int, length: int, kernel_size: int, stride: int = 1) -> np.ndarray:
    """Index map (L_out, in_channels * kernel_size) into a flattened (in_channels, length) input.

    Feature order is channel-major then kernel tap, matching ``weight.reshape(out, -1)``.
    """
    out = _conv_out(length, kernel_size, stride, "conv1d")
    t = np.arange(out)[:, None, None] * stride
    c = np.arange(in_channels)[None, :, None] * length
    j = np.arange(kernel_size)[None, None, :]
    return (c + t + j).reshape(out, in_channels * kernel_size)


def unfold_indices_2d(in_channels: int, height: int, width: int, kernel_size: tuple[int, int],
                      stride: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Index map (H_out * W_out, in_channels * kh * kw) into a flattened (in_channels, height, width) input."""
    kh, kw = kernel_size
    sh, sw = stride
    oh = _conv_out(height, kh, sh, "conv2d")
    ow = _conv_out(width, kw, sw, "conv2d")
    y = (np.arange(oh) * sh)[:, None, None, None, None]
    x = (np.arange(ow) * sw)[None, :, None, None, None]
    c = np.arange(in_channels)[None, None, :, None, None] * height * width
    dy = np.arange(kh)[None, None, None, :, None]
    dx = np.arange(kw)[None, None, None, None, :]
    return (c + (y + dy) * width + x + dx).reshape(oh * ow, in_channels * kh * kw)


def conv_weight_matrix(weight: np.ndarray) -> np.ndarray:
    """A conv weight ``(out, in, *kernel)`` as the ``(in * prod(kernel), out)`` matrix of the unfolded input."""
    w = np.asarray(weight)
    return w.reshape(w.shape[0], -1).T


def expanded_weight_matrix_1d(weight: np.ndarray, stride: int, num_expansions: int) -> np.ndarray:
    """``num_expansions`` shifted copies of a conv1d kernel (out, in, k) side by side.

    Rows: channel-major over a window of ``k + (E - 1) * stride`` taps; columns: copy-major, then output
    channel. Copy e sees the window shifted by ``e * stride``: one tile computes E output positions.
    """
    w = np.asarray(weight)
    out_ch, in_ch, k = w.shape
    if num_expansions < 1:
        raise GraphValueError(f"num_expansions = {num_expansions} is out of range [1, inf)")
    window = k + (num_expansions - 1) * stride
    matrix = np.zeros((in_ch, window, num_expansions, out_ch), dtype=w.dtype)
    for e in range(num_expansions):  # one slice assignment per copy, not per weight
        matrix[:, e * stride:e * stride + k, e, :] = w.transpose(1, 2, 0)
    return matrix.reshape(in_ch * window, num_expansions * out_ch)


def expanded_unfold_indices_1d(in_channels: int, length: int, kernel_size: int, stride: int,
                               num_expansions: int) -> np.ndarray:
    """Index map (ceil(L_out / E), in_channels * window) for :func:`expanded_weight_matrix_1d`.

    Window w starts at ``w * E * stride``; taps past the input end are -1 (zero padding). Output rows
    reshape to (windows * E, out) and the first L_out rows are the convolution.
    """
    out = _conv_out(length, kernel_size, stride, "expanded_conv1d")
    windows = math.ceil(out / num_expansions)
    window = kernel_size + (num_expansions - 1) * stride
    start = (np.arange(windows) * num_expansions * stride)[:, None, None]
    tap = start + np.arange(window)[None, None, :]
    c = np.arange(in_channels)[None, :, None] * length
    idx = np.where(tap < length, c + tap, -1)
    return idx.reshape(windows, in_channels * window)


def conv1d(builder: GraphBuilder, x: int, weight: np.ndarray, num_sends: int = 1,
           wait_between_events: int = 5, num_chips: int = 1) -> VertexDescriptor:
    """Add the matmul of a conv1d: ``x`` gives the unfolded input (DataUInt5[in * k]) of one position.

    The caller unfolds with :func:`unfold_indices_1d` and :func:`apply_unfold`; results per position are
    (out_channels,) and reshape to (batch, L_out, out).
    """
    return matmul(builder, x, conv_weight_matrix(weight), num_sends, wait_between_events, num_chips)


def conv2d(builder: GraphBuilder, x: int, weight: np.ndarray, num_sends: int = 1,
           wait_between_events: int = 5, num_chips: int = 1) -> VertexDescriptor:
    """Add the matmul of a conv2d (input unfolded with :func:`unfold_indices_2d`)."""
    return matmul(builder, x, conv_weight_matrix(weight), num_sends, wait_between_events, num_chips)


def expanded_conv1d(builder: GraphBuilder, x: int, weight: np.ndarray, stride: int = 1, num_expansions: int = 1,
                    num_sends: int = 1, wait_between_events: int = 5, num_chips: int = 1) -> VertexDescriptor:
    """Add the matmul of an expanded conv1d (input unfolded with :func:`expanded_unfold_indices_1d`)."""
    matrix = expanded_weight_matrix_1d(weight, stride, num_expansions)
    return matmul(builder, x, matrix, num_sends, wait_between_events, num_chips)
