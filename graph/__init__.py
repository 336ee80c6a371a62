"""``bss2.graph`` — signal-flow graphs for operator authors and spiking-network users.

* :mod:`~bss2.graph.ports`: connection types and sized ports.
* :mod:`~bss2.graph.vertices`: the closed vertex catalogue (on-chip data path, host transformations
  with numpy reference semantics).
* :mod:`~bss2.graph.graph`: the SSA :class:`GraphBuilder`, the immutable :class:`Graph`,
  :class:`ExecutionInstance`.
* :mod:`~bss2.graph.io`: text table, Graphviz dot, YAML round trip, structural hash.
* :mod:`~bss2.graph.ops`: matmul / conv partitioned into synapse-array tiles, transformations.
* :mod:`~bss2.graph.network`, :mod:`~bss2.graph.routing`, :mod:`~bss2.graph.network_graph`: spiking
  networks, placement and routing with verification, and their signal-flow graph.

Imports only :mod:`bss2.hal` (plus numpy, attrs, pyyaml).
"""

from . import ops
from .errors import (
    EdgeError,
    ExecutionInstanceError,
    GraphError,
    GraphTypeError,
    GraphValueError,
    PortTypeError,
    RoutingError,
    VerificationError,
)
from .graph import Edge, ExecutionInstance, Graph, GraphBuilder, InputSlice, VertexDescriptor
from .io import structural_hash, vertex_from_dict, vertex_to_dict
from .network import (
    BackgroundSpikeSourcePopulation,
    CADCRecording,
    Connections,
    ExternalSpikeSource,
    LIFParameters,
    MADCRecording,
    Network,
    NetworkBuilder,
    Population,
    Projection,
    SpikeRecording,
)
from .network_graph import NetworkGraph, network_to_graph
from .ops import (
    apply_unfold,
    conv_weight_matrix,
    expanded_unfold_indices_1d,
    expanded_weight_matrix_1d,
    matmul,
    matmul_graph,
    unfold_indices_1d,
    unfold_indices_2d,
)
from .ports import ConnectionType, Port
from .routing import (
    Router,
    RoutingResult,
    decode_neuron_labels,
    labels_of,
    realised_connectivity,
    route,
    to_containers,
    update_weights,
    verify,
)
from .vertices import (
    VERTEX_TYPES,
    Addition,
    ArgMax,
    BackgroundSpikeSource,
    CADCMembraneReadoutView,
    Concatenation,
    ConvertingReLU,
    CrossbarNode,
    DataInput,
    DataOutput,
    ExternalInput,
    ExternalSpikeInput,
    ExternalSpikeOutput,
    MACSynapseArrayView,
    MADCReadoutView,
    NeuronEventOutputView,
    NeuronView,
    PADIBus,
    ReLU,
    Subtraction,
    SynapseArrayView,
    SynapseDriver,
    Transformation,
    Unfold,
    Fold,
    Vertex,
    channel_major,
    argmax,
    concatenate,
    converting_relu,
    relu,
    saturating_add,
    saturating_subtract,
)

__all__ = [
    "VERTEX_TYPES", "Addition", "ArgMax", "BackgroundSpikeSource", "BackgroundSpikeSourcePopulation",
    "CADCMembraneReadoutView", "CADCRecording", "Concatenation", "ConnectionType", "Connections",
    "ConvertingReLU", "CrossbarNode", "DataInput", "DataOutput", "Edge", "EdgeError", "ExecutionInstance",
    "ExecutionInstanceError", "ExternalInput", "ExternalSpikeInput", "ExternalSpikeOutput",
    "ExternalSpikeSource", "Graph", "GraphBuilder", "GraphError", "GraphTypeError", "GraphValueError",
    "InputSlice", "LIFParameters", "MACSynapseArrayView", "MADCReadoutView", "MADCRecording", "Network",
    "NetworkBuilder", "NetworkGraph", "NeuronEventOutputView", "NeuronView", "PADIBus", "Population",
    "Port", "PortTypeError", "Projection", "ReLU", "Router", "RoutingError", "RoutingResult",
    "SpikeRecording", "Subtraction", "SynapseArrayView", "SynapseDriver", "Transformation", "Unfold", "Fold", "channel_major",
    "VerificationError", "Vertex", "VertexDescriptor", "apply_unfold", "argmax", "concatenate",
    "conv_weight_matrix", "converting_relu", "decode_neuron_labels", "labels_of", "expanded_unfold_indices_1d", "expanded_weight_matrix_1d",
    "matmul", "matmul_graph", "network_to_graph", "ops", "realised_connectivity", "relu", "route",
    "saturating_add", "saturating_subtract", "structural_hash", "to_containers", "unfold_indices_1d", "unfold_indices_2d",
    "update_weights", "verify", "vertex_from_dict", "vertex_to_dict",
]
