"""Inference tracing: record the hardware ops of a forward pass to a file and replay them without the model.

A trace is a list of ops in execution order. Each op names its kind, its parameters, the nodes it reads (0 is the
model input, ``i + 1`` the output of op ``i``), the per-sample shapes it read (a reshape such as ``flatten``
between two ops is implied by a differing shape) and its arrays (integer weights as int8, float biases).
The file is an ``.npz`` holding a JSON header (``header``) and the arrays (``op<i>_<name>``); no pickle.

The data flow is followed by storage address: an op's input must be the model input or (a reshaped view of) an
earlier op's output. Any other host-side computation between traced ops is untraceable and raises.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from . import _hardware

_log = logging.getLogger("bss2.ml")

FORMAT_VERSION = 1
_active: InferenceTracer | None = None


@attrs.frozen
class TracedOp:
    """One recorded op: ``kind`` (matmul, conv1d, conv2d, expanded_conv1d, relu, converting_relu, add, argmax,
    mean_groups, bias), its ``params``, the ``inputs`` (node ids) and their per-sample ``input_shapes``, the
    per-sample ``output_shape`` and its ``arrays``."""

    kind: str
    params: dict[str, Any]
    inputs: tuple[int, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    arrays: dict[str, np.ndarray] = attrs.field(eq=False)


@attrs.frozen
class Trace:
    """A recorded op sequence; ``input_shape`` is the per-sample shape of the model input."""

    input_shape: tuple[int, ...]
    ops: tuple[TracedOp, ...]


def active() -> InferenceTracer | None:
    """The tracer currently recording, if any (checked by every op; cheap)."""
    return _active


def record(kind: str, inputs: list[Any], output: Any, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Append an op to the active tracer (called by the ops in :mod:`bss2.ml._ops`)."""
    if _active is not None:
        _active._record(kind, inputs, output, params, arrays)


class InferenceTracer:
    """Record the hardware ops of forward passes between :meth:`start` and :meth:`stop` into ``path``.

    Trace one forward pass of a batched input (dim 0 is the batch dimension). Example::

        tracer = InferenceTracer("model.npz")
        tracer.start()
        model(x)
        tracer.stop()
        y = inference_trace(x, "model.npz")
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._ops: list[TracedOp] = []
        self._nodes: dict[int, tuple[int, int]] = {}  # data_ptr -> (node id, numel)
        self._keep_alive: list[Any] = []  # outputs stay alive so no address is reused while tracing
        self._input_shape: tuple[int, ...] | None = None

    def start(self) -> InferenceTracer:
        """Begin recording (only one tracer records at a time)."""
        global _active
        if _active is not None:
            raise RuntimeError("InferenceTracer.start: another tracer is already recording")
        self._ops, self._nodes, self._keep_alive, self._input_shape = [], {}, [], None
        _active = self
        return self

    def stop(self) -> Trace:
        """Stop recording, write the trace to :attr:`path` and return it."""
        global _active
        if _active is not self:
            raise RuntimeError("InferenceTracer.stop: this tracer is not recording")
        _active = None
        self._keep_alive, self._nodes = [], {}
        if not self._ops or self._input_shape is None:
            raise RuntimeError("InferenceTracer.stop: no bss2.ml op was recorded")
        trace = Trace(self._input_shape, tuple(self._ops))
        save_trace(trace, self.path)
        _log.info("traced %d ops to %s", len(trace.ops), self.path)
        return trace

    def _node_of(self, tensor: Any) -> int:
        key = tensor.data_ptr()
        known = self._nodes.get(key)
        if known is not None and known[1] == tensor.numel():
            return known[0]
        if self._input_shape is None:
            self._input_shape = tuple(tensor.shape[1:])
            self._nodes[key] = (0, tensor.numel())
            self._keep_alive.append(tensor)
            return 0
        raise RuntimeError(
            "InferenceTracer: an op reads a tensor that is neither the model input nor an earlier traced op's output "
            "(an untraceable host-side computation between bss2.ml ops; use bss2.ml ops or preprocess the input)")

    def _record(self, kind: str, inputs: list[Any], output: Any, params: dict[str, Any],
                arrays: dict[str, np.ndarray]) -> None:
        nodes = tuple(self._node_of(tensor) for tensor in inputs)
        shapes = tuple(tuple(tensor.shape[1:]) for tensor in inputs)
        self._ops.append(TracedOp(kind, params, nodes, shapes, tuple(output.shape[1:]), arrays))
        self._nodes[output.data_ptr()] = (len(self._ops), output.numel())
        self._keep_alive.append(output)


def save_trace(trace: Trace, path: str | os.PathLike[str]) -> None:
    """Write ``trace`` as ``.npz`` with a JSON header (no pickle)."""
    header = {
        "format": "bss2.ml.trace", "version": FORMAT_VERSION, "input_shape": list(trace.input_shape),
        "ops": [{"kind": op.kind, "params": op.params, "inputs": list(op.inputs),
                 "input_shapes": [list(s) for s in op.input_shapes], "output_shape": list(op.output_shape),
                 "arrays": sorted(op.arrays)} for op in trace.ops],
    }
    arrays = {f"op{i}_{name}": value for i, op in enumerate(trace.ops) for name, value in op.arrays.items()}
    with open(path, "wb") as file:
        np.savez(file, header=np.array(json.dumps(header)), **arrays)


_cache: dict[tuple[str, int, int], Trace] = {}


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace written by :class:`InferenceTracer` (cached by path, size and modification time)."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        if header.get("format") != "bss2.ml.trace" or header.get("version") != FORMAT_VERSION:
            raise ValueError(f"load_trace: {path} is not a bss2.ml trace of version {FORMAT_VERSION}")
        ops = tuple(
            TracedOp(op["kind"], op["params"], tuple(op["inputs"]), tuple(tuple(s) for s in op["input_shapes"]),
                     tuple(op["output_shape"]), {name: data[f"op{i}_{name}"] for name in op["arrays"]})
            for i, op in enumerate(header["ops"]))
    trace = Trace(tuple(header["input_shape"]), ops)
    _cache[key] = trace
    return trace


# ----------------------------------------------------------------------------------------------------------------------
# replay: numpy only, mirroring the float32 arithmetic of the live ops so results are equal


def _matmul_rows(rows: np.ndarray, op: TracedOp) -> np.ndarray:
    inputs = np.rint(rows).astype(np.int64)
    weight = op.arrays["weight"].astype(np.int64)
    result = _hardware.run_matmul(inputs, weight, op.params["num_sends"], op.params["wait_between_events"])
    return result.astype(np.float32)


def _with_bias(out: np.ndarray, op: TracedOp) -> np.ndarray:
    bias = op.arrays.get("bias")
    if bias is None:
        return out
    return out + bias.reshape(1, -1, *([1] * (out.ndim - 2)))


def _replay_op(op: TracedOp, args: list[np.ndarray]) -> np.ndarray:
    x = args[0]
    batch = x.shape[0]
    kind = op.kind
    if kind == "matmul":
        out = _matmul_rows(x.reshape(-1, x.shape[-1]), op)
        return out.reshape(*x.shape[:-1], -1)
    if kind == "conv1d":
        kernel, stride = op.params["kernel"], op.params["stride"]
        windows = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=2)[:, :, ::stride]
        length = windows.shape[2]
        rows = windows.transpose(0, 2, 1, 3).reshape(batch * length, -1)
        out = _matmul_rows(rows, op).reshape(batch, length, -1).transpose(0, 2, 1)
        return _with_bias(out, op)
    if kind == "expanded_conv1d":
        kernel, stride, expansions = op.params["kernel"], op.params["stride"], op.params["num_expansions"]
        length = (x.shape[2] - kernel) // stride + 1
        span = kernel + (expansions - 1) * stride
        groups = -(-length // expansions)
        needed = (groups - 1) * expansions * stride + span
        if needed > x.shape[2]:
            x = np.pad(x, ((0, 0), (0, 0), (0, needed - x.shape[2])))
        windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=2)[:, :, ::expansions * stride][:, :, :groups]
        rows = windows.transpose(0, 2, 1, 3).reshape(batch * groups, -1)
        out = _matmul_rows(rows, op).reshape(batch, groups * expansions, -1)[:, :length].transpose(0, 2, 1)
        return _with_bias(out, op)
    if kind == "conv2d":
        (kh, kw), (sh, sw) = op.params["kernel"], op.params["stride"]
        windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        _, _, out_h, out_w = windows.shape[:4]
        rows = windows.transpose(0, 2, 3, 1, 4, 5).reshape(batch * out_h * out_w, -1)
        out = _matmul_rows(rows, op).reshape(batch, out_h, out_w, -1).transpose(0, 3, 1, 2)
        return _with_bias(out, op)
    if kind == "relu":
        return np.maximum(x, np.float32(0))
    if kind == "converting_relu":
        out = np.floor(x / np.float32(2 ** op.params["shift"]))
        return np.clip(out, _hardware.INPUT_MIN, _hardware.INPUT_MAX, out=out)
    if kind == "add":
        return np.clip(x + args[1], _hardware.OUTPUT_MIN, _hardware.OUTPUT_MAX)
    if kind == "argmax":
        dim = op.params["dim"]
        if dim is None:
            return np.asarray(np.argmax(x))  # as torch.argmax: over the whole tensor, batch included
        return np.argmax(x, axis=dim) if not op.params["keepdim"] else np.expand_dims(np.argmax(x, axis=dim), dim)
    if kind == "mean_groups":
        size = op.params["size"]
        return x.reshape(*x.shape[:-1], -1, size).sum(-1) / np.float32(size)
    if kind == "bias":
        return x + op.arrays["bias"]
    raise ValueError(f"replay: unknown op kind {kind!r}")


@attrs.frozen
class CompiledTrace:
    """The graph of a trace's leading hardware-expressible ops (run in one executor call) and the rest.

    ``nodes`` maps trace node ids to ``(descriptor, per-sample shape)`` of the graph; ``rest`` is the index
    of the first op left to the host (float-only ops such as bias or averaging), ``len(ops)`` if none.
    """

    graph: Any
    input_descriptor: int
    nodes: dict[int, tuple[int, tuple[int, ...]]]
    rest: int
    #: the graph nodes read after the executor call: the ops left to the host, or the last op's output
    needed: tuple[int, ...] = ()


_compiled: dict[int, tuple[Trace, CompiledTrace | None]] = {}


def _compile(trace: Trace) -> CompiledTrace | None:
    """Translate the longest graph-expressible prefix of ``trace`` into one signal-flow graph.

    Hardware ops become partitioned matmuls (convolutions with :class:`~bss2.graph.Unfold` /
    :class:`~bss2.graph.Fold` around them), relu / converting_relu / add / argmax their host
    transformations. Returns None when not even the first op can be expressed.
    """
    from bss2.graph import ArgMax, ConvertingReLU, Fold, GraphBuilder, ReLU, Unfold, channel_major, ops
    from bss2.graph.ports import ConnectionType as CT
    from bss2.graph.vertices import Addition, ExternalInput

    builder = GraphBuilder()
    size = int(np.prod(trace.input_shape))
    x = builder.add(ExternalInput(CT.DataUInt5, size, "input"), execution_instance=builder.new_execution_instance())
    nodes: dict[int, tuple[int, tuple[int, ...]]] = {0: (x, tuple(trace.input_shape))}
    kinds: dict[int, str] = {0: "DataUInt5"}

    def host(vertex: Any, inputs: list[int]) -> int:
        return builder.add(vertex, inputs, builder.new_execution_instance())

    rest = len(trace.ops)
    for index, op in enumerate(trace.ops):
        node = index + 1
        if any(i not in nodes for i in op.inputs) or op.arrays.get("bias") is not None:
            rest = index
            break
        source, _ = nodes[op.inputs[0]]
        shape = tuple(op.input_shapes[0])
        kind = kinds[op.inputs[0]]
        out_shape = tuple(op.output_shape)
        if op.kind in ("matmul", "conv1d", "conv2d", "expanded_conv1d"):
            if kind != "DataUInt5":
                rest = index
                break
            weight = op.arrays["weight"]
            sends, wait = int(op.params["num_sends"]), int(op.params["wait_between_events"])
            if op.kind == "matmul" and len(shape) == 1:
                d = ops.matmul(builder, source, weight, sends, wait)
            else:
                if op.kind == "matmul":
                    positions = int(np.prod(shape[:-1]))
                    indices = np.arange(positions * shape[-1]).reshape(positions, shape[-1])
                    fold = np.arange(positions * weight.shape[1])
                elif op.kind == "conv1d":
                    indices = ops.unfold_indices_1d(shape[0], shape[1], op.params["kernel"], op.params["stride"])
                    positions = indices.shape[0]
                    fold = channel_major(weight.shape[1], positions)
                elif op.kind == "conv2d":
                    indices = ops.unfold_indices_2d(shape[0], shape[1], shape[2], tuple(op.params["kernel"]),
                                                    tuple(op.params["stride"]))
                    positions = indices.shape[0]
                    fold = channel_major(weight.shape[1], positions)
                else:
                    expansions = int(op.params["num_expansions"])
                    indices = ops.expanded_unfold_indices_1d(shape[0], shape[1], op.params["kernel"],
                                                             op.params["stride"], expansions)
                    positions = indices.shape[0]
                    channels = weight.shape[1] // expansions
                    length = out_shape[1]
                    o, p = np.meshgrid(np.arange(channels), np.arange(length), indexing="ij")
                    fold = (p * channels + o).reshape(-1)
                rows = host(Unfold(CT.DataUInt5, int(np.prod(shape)), indices), [source])
                d = ops.matmul(builder, rows, weight, sends, wait)
                d = host(Fold(CT.DataInt8, int(weight.shape[1]), positions, fold), [d])
            nodes[node], kinds[node] = (d, out_shape), "DataInt8"
        elif op.kind == "relu" and kind == "DataInt8":
            nodes[node], kinds[node] = (host(ReLU(int(np.prod(shape))), [source]), out_shape), "DataInt8"
        elif op.kind == "converting_relu" and kind == "DataInt8":
            vertex = ConvertingReLU(int(np.prod(shape)), int(op.params["shift"]))
            nodes[node], kinds[node] = (host(vertex, [source]), out_shape), "DataUInt5"
        elif op.kind == "add" and kind == "DataInt8" and kinds.get(op.inputs[1]) == "DataInt8":
            other, _ = nodes[op.inputs[1]]
            nodes[node], kinds[node] = (host(Addition(int(np.prod(shape)), 2), [source, other]), out_shape), "DataInt8"
        elif op.kind == "argmax" and kind == "DataInt8" and len(shape) == 1 and op.params["dim"] in (-1, 1) and not op.params["keepdim"]:
            nodes[node], kinds[node] = (host(ArgMax(shape[0]), [source]), out_shape), "DataInt32"
        else:
            rest = index
            break
    if rest == 0:
        return None
    needed = {i for op in trace.ops[rest:] for i in op.inputs if i in nodes and i} if rest < len(trace.ops) else {len(trace.ops)}
    return CompiledTrace(builder.build(), x, nodes, rest, tuple(sorted(needed)))


def _compiled_trace(trace: Trace) -> CompiledTrace | None:
    cached = _compiled.get(id(trace))
    if cached is None or cached[0] is not trace:
        if len(_compiled) > 16:
            _compiled.clear()
        cached = (trace, _compile(trace))
        _compiled[id(trace)] = cached
    return cached[1]


def replay(trace: Trace, input: np.ndarray) -> np.ndarray:
    """Run the recorded op sequence on ``input`` ``(batch, *trace.input_shape)`` and return the last op's output.

    The hardware ops and the integer host ops between them run as **one executor call** on one graph
    (compiled once per trace); float-only ops (bias, averaging) end the graph and run on the host, so a
    model whose first layer has a bias replays op by op.
    """
    x = np.asarray(input, dtype=np.float32)
    if x.shape[1:] != tuple(trace.input_shape) or x.ndim == 0:
        raise ValueError(f"replay: input has per-sample shape {tuple(x.shape[1:])}, the trace expects "
                         f"{tuple(trace.input_shape)}")
    batch = x.shape[0]
    values: list[np.ndarray | None] = [x] + [None] * len(trace.ops)
    compiled = _compiled_trace(trace)
    start = 0
    if compiled is not None:
        rounded = np.rint(x.reshape(batch, math.prod(trace.input_shape)))
        if rounded.size:
            lowest, highest = rounded.min(), rounded.max()
            if not (lowest >= _hardware.INPUT_MIN and highest <= _hardware.INPUT_MAX):  # NaN fails both
                raise OverflowError(f"replay: input outside {_hardware.INPUT_MIN}..{_hardware.INPUT_MAX} after rounding")
        outputs, _ = _hardware.executor().run(compiled.graph, {compiled.input_descriptor: rounded.astype(np.uint8)})
        for node in compiled.needed:  # only what the host ops after the graph (or the caller) read
            descriptor, shape = compiled.nodes[node]
            values[node] = np.asarray(outputs[descriptor]).astype(np.float32).reshape(batch, *shape)
        start = compiled.rest
    for index in range(start, len(trace.ops)):
        op = trace.ops[index]
        args = [values[node].reshape(batch, *shape) for node, shape in zip(op.inputs, op.input_shapes)]  # type: ignore[union-attr]
        values[index + 1] = _replay_op(op, args)
    return values[-1]  # type: ignore[return-value]


def inference_trace(input: Any, path: str | os.PathLike[str]) -> Any:
    """Replay the trace at ``path`` on ``input`` without the Python model.

    :param input: (batch, ...) tensor or array, as the first traced op saw it (after any preprocessing).
    :returns: the output of the last traced op, a torch tensor if ``input`` is one, else a numpy array.
    """
    trace = load_trace(path)
    if isinstance(input, torch.Tensor):
        out = replay(trace, input.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(np.ascontiguousarray(out)).to(input.device)
    return replay(trace, np.asarray(input))
