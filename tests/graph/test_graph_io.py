"""Text table, dot, YAML round trip and the structural hash."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bss2.graph import (
    ExecutionInstance,
    Graph,
    GraphValueError,
    MACSynapseArrayView,
    ReLU,
    matmul_graph,
    vertex_from_dict,
    vertex_to_dict,
)
from bss2.graph import VERTEX_TYPES

from graph_helpers import mac_chain
from test_graph_routing import small_network

SCRIPT = textwrap.dedent("""
    import numpy as np
    from bss2.graph import matmul_graph
    w = (np.arange(300 * 70).reshape(300, 70) % 127) - 63
    print(matmul_graph(w)[0].structural_hash())
""")


def fixed_graph() -> Graph:
    return matmul_graph((np.arange(300 * 70).reshape(300, 70) % 127) - 63)[0]


def test_yaml_round_trip_of_a_matmul_graph():
    graph = fixed_graph()
    again = Graph.from_yaml(graph.to_yaml())
    assert again == graph
    assert again.structural_hash() == graph.structural_hash()


def test_yaml_round_trip_of_a_network_graph_with_recurrent_edges():
    from bss2.graph import network_to_graph, route
    network = small_network(np.random.default_rng(5), recurrent=True)
    graph = network_to_graph(network, route(network)).graph
    assert any(e.recurrent for e in graph.edges())
    again = Graph.from_yaml(graph.to_yaml())
    assert again == graph
    assert again.structural_hash() == graph.structural_hash()


def test_every_vertex_type_round_trips_through_its_dict(builder):
    x, *rest = mac_chain(builder)
    for d in builder.build():
        vertex = builder.vertex(d)
        assert vertex_from_dict(vertex_to_dict(vertex)) == vertex
    assert {"SynapseArrayView", "PADIBus", "ConvertingReLU", "MADCReadoutView"} <= set(VERTEX_TYPES)


def test_hash_is_stable_across_processes():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == fixed_graph().structural_hash()


def test_hash_changes_with_a_weight_and_with_an_instance():
    w = np.zeros((10, 10), np.int8)
    base = matmul_graph(w)[0].structural_hash()
    w2 = w.copy()
    w2[3, 4] = 1
    assert matmul_graph(w2)[0].structural_hash() != base
    assert matmul_graph(w.copy())[0].structural_hash() == base
    assert matmul_graph(w, num_sends=2)[0].structural_hash() != base


def test_table_and_dot_mention_every_vertex(builder):
    descriptors = mac_chain(builder)
    builder.add(ReLU(3), [descriptors[-1]], ExecutionInstance(2))
    graph = builder.build()
    table = graph.to_table()
    assert len(table.splitlines()) == len(graph) + 2
    assert "MACSynapseArrayView" in table and "weights=<int8 4x3>" in table
    dot = graph.to_dot()
    assert dot.startswith("digraph") and dot.count("subgraph cluster_") == 3
    assert all(f"v{i} [" in dot for i in range(len(graph)))
    assert str(graph) == table


def test_from_yaml_rejects_foreign_text():
    with pytest.raises(GraphValueError):
        Graph.from_yaml("a: 1")


def test_from_yaml_revalidates(builder):
    mac_chain(builder)
    text = builder.build().to_yaml().replace("synram: 0", "synram: 1", 1)
    with pytest.raises(GraphValueError):
        Graph.from_yaml(text)


def test_views_serialise_their_weights_exactly():
    graph = fixed_graph()
    again = Graph.from_yaml(graph.to_yaml())
    for d in graph.find(MACSynapseArrayView):
        np.testing.assert_array_equal(again.vertex(d).weights, graph.vertex(d).weights)
        assert again.vertex(d).weights.dtype == np.int8
