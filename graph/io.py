"""Graph output: text table, Graphviz dot, YAML round trip and the structural hash.

The YAML and the hash share one canonical form of a vertex: its type name and its attrs fields, with
coordinates as their integer enum, enums as their value, tuples as lists and numpy arrays as
``{dtype, shape, data}`` (little-endian bytes in base64). The hash replaces each array's data by the
sha256 of its bytes, then hashes the JSON of the whole graph (sorted keys), so it is the same in every
process and on every platform.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import attrs
import numpy as np
import yaml

from bss2.hal.coordinates import Coordinate

from .errors import GraphValueError
from .graph import ExecutionInstance, Graph, GraphBuilder, InputSlice
from .ports import ConnectionType
from .vertices import VERTEX_TYPES, Vertex

FORMAT = "bss2.graph/1"


def _array_bytes(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _plain(value: Any, digest_arrays: bool) -> Any:
    if isinstance(value, np.ndarray):
        entry: dict[str, Any] = {"dtype": value.dtype.name, "shape": list(value.shape)}
        raw = _array_bytes(value)
        if digest_arrays:
            entry["sha256"] = hashlib.sha256(raw).hexdigest()
        else:
            entry["data"] = base64.b64encode(raw).decode("ascii")
        return {"__array__": entry}
    if isinstance(value, Coordinate):
        return int(value)
    if isinstance(value, ConnectionType):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_plain(v, digest_arrays) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    raise GraphValueError(f"cannot serialise a vertex field of type {type(value).__name__}")


def _from_plain(value: Any) -> Any:
    if isinstance(value, dict) and "__array__" in value:
        entry = value["__array__"]
        dtype = np.dtype(entry["dtype"]).newbyteorder("<")
        data = np.frombuffer(base64.b64decode(entry["data"]), dtype=dtype)
        return data.astype(dtype.newbyteorder("=")).reshape(entry["shape"])
    if isinstance(value, list):
        return [_from_plain(v) for v in value]
    return value


def vertex_to_dict(vertex: Vertex, digest_arrays: bool = False) -> dict[str, Any]:
    """The canonical plain form of a vertex: ``{"type": name, "fields": {...}}``."""
    fields = {f.name: _plain(getattr(vertex, f.name), digest_arrays) for f in attrs.fields(type(vertex))}  # type: ignore[arg-type]
    return {"type": type(vertex).__name__, "fields": fields}


def vertex_from_dict(data: dict[str, Any]) -> Vertex:
    """Inverse of :func:`vertex_to_dict` (validating)."""
    kind = VERTEX_TYPES.get(data["type"])
    if kind is None:
        raise GraphValueError(f"unknown vertex type {data['type']!r}; known: {sorted(VERTEX_TYPES)}")
    return kind(**{k: _from_plain(v) for k, v in data["fields"].items()})  # type: ignore[call-arg]


def _graph_to_plain(graph: Graph, digest_arrays: bool) -> dict[str, Any]:
    vertices = []
    for index, vertex in enumerate(graph.vertices):
        entry = vertex_to_dict(vertex, digest_arrays)
        instance = graph.execution_instance(index)
        entry["instance"] = [instance.id, instance.chip]
        entry["inputs"] = [[e.source, e.start, e.stop, e.recurrent] for e in graph.inputs(index)]
        vertices.append(entry)
    return {"format": FORMAT, "vertices": vertices}


def to_yaml(graph: Graph) -> str:
    """YAML text of ``graph`` (arrays as base64)."""
    return yaml.safe_dump(_graph_to_plain(graph, digest_arrays=False), sort_keys=False, width=120)


def from_yaml(text: str) -> Graph:
    """The graph of :func:`to_yaml` output, rebuilt through :class:`GraphBuilder` (so re-validated)."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GraphValueError(f"not a serialised graph (expected format {FORMAT!r})")
    builder = GraphBuilder()
    deferred: list[tuple[int, list[InputSlice]]] = []
    for index, entry in enumerate(data["vertices"]):
        inputs = [InputSlice(s, a, b) for s, a, b, _ in entry["inputs"]]
        # inputs up to the first recurrent one were given when the vertex was added; the rest later
        first_late = next((i for i, (_, _, _, rec) in enumerate(entry["inputs"]) if rec), len(inputs))
        builder.add(vertex_from_dict(entry), inputs[:first_late], ExecutionInstance(*entry["instance"]))
        if first_late < len(inputs):
            deferred.append((index, inputs[first_late:]))
    for index, inputs in deferred:
        builder.add(index, inputs)
    return builder.build()


def structural_hash(graph: Graph) -> str:
    """sha256 hex digest of the canonical form (arrays by dtype, shape and the sha256 of their bytes)."""
    plain = _graph_to_plain(graph, digest_arrays=True)
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _inputs_text(graph: Graph, index: int) -> str:
    parts = []
    for edge in graph.inputs(index):
        size = graph.vertex(edge.source).output_port().size
        text = f"v{edge.source}" if (edge.start, edge.stop) == (0, size) else f"v{edge.source}[{edge.start}:{edge.stop}]"
        parts.append(text + ("*" if edge.recurrent else ""))
    return ", ".join(parts)


def to_table(graph: Graph, max_config: int = 60) -> str:
    """One row per vertex: descriptor, instance, type, inputs (``*`` = recurrent), output port, configuration."""
    header = ("vertex", "instance", "type", "inputs", "output", "configuration")
    rows = [header]
    for index, vertex in enumerate(graph.vertices):
        instance = graph.execution_instance(index)
        config = vertex.describe()
        if len(config) > max_config:
            config = config[: max_config - 3] + "..."
        inputs = _inputs_text(graph, index)
        if len(inputs) > 40:
            inputs = inputs[:37] + "..."
        rows.append((f"v{index}", f"{instance.id}@chip{instance.chip}", type(vertex).__name__, inputs,
                     str(vertex.output_port()), config))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz dot source: one cluster per execution instance; recurrent edges dashed."""
    lines = ["digraph bss2_graph {", "  rankdir=TB;", "  node [shape=box, fontname=Helvetica];"]
    for n, instance in enumerate(graph.execution_instances()):
        lines.append(f"  subgraph cluster_{n} {{")
        lines.append(f"    label={_quote(f'instance {instance.id} (chip {instance.chip})')};")
        for d in graph.instance_vertices(instance):
            vertex = graph.vertex(d)
            label = f"v{int(d)}: {type(vertex).__name__}\n{vertex.output_port()}"
            style = ", style=rounded" if vertex.is_transformation else ""
            lines.append(f"    v{int(d)} [label={_quote(label)}{style}];")
        lines.append("  }")
    for edge in graph.edges():
        attrs_ = []
        size = graph.vertex(edge.source).output_port().size
        if (edge.start, edge.stop) != (0, size):
            attrs_.append(f"label={_quote(f'[{edge.start}:{edge.stop}]')}")
        if edge.recurrent:
            attrs_.append("style=dashed")
        suffix = f" [{', '.join(attrs_)}]" if attrs_ else ""
        lines.append(f"  v{edge.source} -> v{edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
