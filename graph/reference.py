"""A host-only reference interpreter for hagen-mode graphs (for tests, mock mode and debugging).

:func:`evaluate` runs the vertices in descriptor order with batch-major numpy arrays: memory vertices
pass data on (sliced as the edges say), each :class:`MACSynapseArrayView` computes ``mac(x, view)`` and
transformations use their :meth:`~bss2.graph.vertices.Transformation.evaluate`. Spiking vertices are
not interpreted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .errors import GraphValueError
from .graph import Graph
from .vertices import (
    CADCMembraneReadoutView,
    DataInput,
    DataOutput,
    ExternalInput,
    MACSynapseArrayView,
    NeuronView,
    Transformation,
)

MacFunction = Callable[[np.ndarray, MACSynapseArrayView], np.ndarray]


def ideal_mac(x: np.ndarray, view: MACSynapseArrayView) -> np.ndarray:
    """Exact ``x @ weights`` clipped to the CADC's int8 range (no gain, no noise)."""
    product = np.asarray(x, np.int64) @ view.weights.astype(np.int64)
    return np.clip(product, -128, 127).astype(np.int8)


def evaluate(graph: Graph, inputs: Mapping[int, np.ndarray], mac: MacFunction = ideal_mac,
             transformations: Mapping[type, Callable[..., np.ndarray]] | None = None) -> dict[int, np.ndarray]:
    """Values (batch, size) of every interpretable vertex; ``inputs`` maps each ExternalInput descriptor
    to its (batch, size) data. ``transformations`` overrides the semantics of transformation types."""
    overrides = dict(transformations or {})
    values: dict[int, np.ndarray] = {}
    for d in graph:
        vertex = graph.vertex(d)
        args = [values[e.source][..., e.start:e.stop] for e in graph.inputs(d) if e.source in values]
        if isinstance(vertex, ExternalInput):
            if d not in inputs:
                raise GraphValueError(f"evaluate: no data for ExternalInput v{int(d)}")
            values[d] = np.asarray(inputs[d])
        elif isinstance(vertex, (DataInput, DataOutput, NeuronView, CADCMembraneReadoutView)):
            if args:
                values[d] = args[0]
        elif isinstance(vertex, MACSynapseArrayView):
            values[d] = mac(args[0], vertex)
        elif isinstance(vertex, Transformation):
            function = overrides.get(type(vertex))
            values[d] = function(vertex, *args) if function else vertex.evaluate(*args)
    return values
