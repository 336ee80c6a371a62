"""GraphBuilder invariants: SSA order, transactional adds, execution-instance rule, immutable graphs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.graph import (
    Addition,
    ConnectionType,
    CrossbarNode,
    EdgeError,
    ExecutionInstance,
    ExecutionInstanceError,
    ExternalInput,
    Graph,
    GraphBuilder,
    GraphError,
    GraphTypeError,
    NeuronEventOutputView,
    PADIBus,
    ReLU,
)
from bss2.hal.coordinates import CrossbarNodeOnDLS, PADIBusOnDLS

from graph_helpers import mac_chain

CT = ConnectionType


def snapshot(builder: GraphBuilder) -> Graph:
    return builder.build()


# ------------------------------------------------------------------------- hypothesis: model check

operation = st.one_of(
    st.tuples(st.just("input"), st.sampled_from([2, 3]), st.integers(0, 3)),
    st.tuples(st.just("relu"), st.integers(-1, 30), st.integers(0, 3)),
    st.tuples(st.just("add"), st.lists(st.integers(-1, 30), min_size=1, max_size=3), st.integers(0, 3)),
    st.tuples(st.just("slice"), st.integers(0, 30), st.integers(0, 3), st.integers(0, 4)),
)


class Model:
    """An independent model of which adds must succeed: sizes, existence and an acyclic instance graph."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.instances: list[int] = []
        self.links: set[tuple[int, int]] = set()

    def reaches(self, a: int, b: int) -> bool:
        frontier, seen = [a], set()
        while frontier:
            node = frontier.pop()
            if node == b:
                return True
            seen.add(node)
            frontier.extend(t for s, t in self.links if s == node and t not in seen)
        return False

    def accepts(self, sources: list[int], size: int | None, instance: int) -> bool:
        if any(not 0 <= s < len(self.sizes) for s in sources):
            return False
        if size is not None and any(self.sizes[s] != size for s in sources):
            return False
        new = {(self.instances[s], instance) for s in sources if self.instances[s] != instance}
        return not any(self.reaches(instance, src) for src, _ in new - self.links)

    def commit(self, sources: list[int], size: int, instance: int) -> None:
        self.links |= {(self.instances[s], instance) for s in sources if self.instances[s] != instance}
        self.sizes.append(size)
        self.instances.append(instance)


@settings(max_examples=150, deadline=None)
@given(st.lists(operation, max_size=25))
def test_random_sequences_match_the_model_and_rejected_adds_change_nothing(ops):
    builder, model = GraphBuilder(), Model()
    for op in ops:
        kind, instance = op[0], op[-1] if op[0] != "slice" else op[2]
        inst = ExecutionInstance(instance)
        before = builder.build()
        if kind == "input":
            expected, sources, size = True, [], op[1]
            call = lambda: builder.add(ExternalInput(CT.DataInt8, size), [], inst)  # noqa: E731
        elif kind == "relu":
            sources = [op[1]]
            size = model.sizes[op[1]] if 0 <= op[1] < len(model.sizes) else 2
            expected = model.accepts(sources, size, instance)
            call = lambda: builder.add(ReLU(size), sources, inst)  # noqa: E731
        elif kind == "add":
            sources = op[1]
            size = 2
            expected = model.accepts(sources, size, instance)
            call = lambda: builder.add(Addition(size, len(sources)), sources, inst)  # noqa: E731
        else:
            source, stop = op[1], op[3]
            sources, size = [source], 2
            valid_slice = 0 <= source < len(model.sizes) and stop <= model.sizes[source] and stop - 0 == 2
            expected = valid_slice and model.accepts(sources, None, instance)
            call = lambda: builder.add(ReLU(2), [builder_slice(source, stop)], inst)  # noqa: E731
        try:
            call()
            accepted = True
        except GraphError:
            accepted = False
        assert accepted == expected, op
        if accepted:
            model.commit(sources, size, instance)
        else:
            assert builder.build() == before
            assert len(builder) == len(before)
    graph = builder.build()
    check_graph_invariants(graph)


def builder_slice(source: int, stop: int):
    from bss2.graph import InputSlice
    return InputSlice(source, 0, stop)


def check_graph_invariants(graph: Graph) -> None:
    for edge in graph.edges():
        assert edge.recurrent or edge.source < edge.target
    order = graph.execution_instances()
    assert set(order) == {graph.execution_instance(d) for d in graph}
    position = {inst: i for i, inst in enumerate(order)}
    for inst, deps in graph.instance_dependencies().items():
        assert all(position[dep] < position[inst] for dep in deps)
    assert sum(len(graph.instance_vertices(i)) for i in order) == len(graph)


# ------------------------------------------------------------------------------------- unit tests


def test_inputs_must_exist_already(builder):
    with pytest.raises(EdgeError, match="v0 does not exist"):
        builder.add(ReLU(2), [0])
    assert len(builder) == 0


def test_graph_errors_are_value_or_type_errors(builder):
    with pytest.raises(ValueError):
        builder.add(ReLU(2), [7])
    with pytest.raises(TypeError):
        builder.add("ReLU")  # type: ignore[arg-type]
    with pytest.raises(GraphTypeError):
        builder.add(ReLU(2), ["x"])  # type: ignore[list-item]


@pytest.mark.parametrize("inputs", [5, "x", b"x", None], ids=["descriptor", "str", "bytes", "None"])
def test_inputs_must_be_a_sequence(builder, inputs):
    builder.add(ExternalInput(CT.DataInt8, 4))
    with pytest.raises(GraphTypeError, match="must be a sequence"):
        builder.add(ReLU(4), inputs)
    assert len(builder) == 1


@pytest.mark.parametrize("cut", [slice(0.5, 2.5), slice("a", None), slice(None, 2.0)], ids=["fractional", "str", "float stop"])
def test_slice_bounds_must_be_integers(builder, cut):
    x = builder.add(ExternalInput(CT.DataInt8, 4))
    with pytest.raises(GraphTypeError, match="integers or None"):
        x[cut]
    from bss2.graph import InputSlice

    with pytest.raises(GraphTypeError, match="integer bounds"):  # built by hand, not by slicing
        builder.add(ReLU(2), [InputSlice(int(x), cut.start, cut.stop)])
    assert len(builder) == 1
    builder.add(ReLU(2), [x[np.int64(1) : np.int64(3)]])  # numpy integers are integers


@pytest.mark.parametrize("args", [(1.5,), ("a",), (0, None), (True,)], ids=["float id", "str id", "None chip", "bool id"])
def test_execution_instance_fields_must_be_integers(args):
    with pytest.raises(GraphTypeError, match="must be integers"):
        ExecutionInstance(*args)
    assert ExecutionInstance(np.int64(2), np.int64(0)) == ExecutionInstance(2, 0)


def test_on_chip_types_do_not_cross_instances(builder):
    x, d, *_ = mac_chain(builder)
    with pytest.raises(ExecutionInstanceError, match="only Data\\* memory types cross"):
        from bss2.graph import MACSynapseArrayView
        builder.add(MACSynapseArrayView(0, range(4), range(3), np.zeros((4, 3))), [d], ExecutionInstance(5))


def test_instance_cycle_is_rejected_and_nothing_changes(builder):
    a = builder.add(ExternalInput(CT.DataInt8, 2), execution_instance=ExecutionInstance(0))
    b = builder.add(ReLU(2), [a], ExecutionInstance(1))
    before = builder.build()
    with pytest.raises(ExecutionInstanceError, match="cyclic"):
        builder.add(ReLU(2), [b], ExecutionInstance(0))
    assert builder.build() == before


def test_recurrence_by_re_adding_a_vertex(builder):
    bus = builder.add(PADIBus(PADIBusOnDLS(0, 0)))
    *_, neurons, _, _ = mac_chain(builder, rows=2, columns=4, instance=ExecutionInstance(0))
    eo = builder.add(NeuronEventOutputView(0), [neurons])
    node = builder.add(CrossbarNode(CrossbarNodeOnDLS(0, 0)), [eo])
    assert builder.add(bus, [node]) == bus
    graph = builder.build()
    (edge,) = graph.inputs(bus)
    assert edge.recurrent and edge.source == node
    check_graph_invariants(graph)


def test_recurrent_edges_are_validated(builder):
    bus = builder.add(PADIBus(PADIBusOnDLS(0, 0)))
    *_, neurons, _, _ = mac_chain(builder, rows=2, columns=4, instance=ExecutionInstance(0))
    eo = builder.add(NeuronEventOutputView(0), [neurons])
    wrong = builder.add(CrossbarNode(CrossbarNodeOnDLS(0, 1)), [eo])
    with pytest.raises(EdgeError, match="does not feed PADI bus"):
        builder.add(bus, [wrong])
    with pytest.raises(ExecutionInstanceError):
        builder.add(bus, [wrong], ExecutionInstance(3))
    assert builder.build().inputs(bus) == ()


def test_recurrent_edges_cannot_cross_instances(builder):
    relu = builder.add(Addition(2, 1), [builder.add(ExternalInput(CT.DataInt8, 2))])
    later = builder.add(ExternalInput(CT.DataInt8, 2), execution_instance=ExecutionInstance(1))
    with pytest.raises(EdgeError):  # Addition(…, 1) is full
        builder.add(relu, [later])


def test_built_graph_is_immutable_and_independent_of_the_builder(builder):
    mac_chain(builder)
    graph = builder.build()
    with pytest.raises(AttributeError):
        graph._vertices = ()  # type: ignore[misc]
    n = len(graph)
    builder.add(ReLU(3), [n - 1], ExecutionInstance(1))
    assert len(graph) == n
    assert isinstance(graph.vertices, tuple)


def test_minimum_arity_is_checked_at_add(builder):
    with pytest.raises(EdgeError, match="takes 1..1 inputs, got 0"):
        builder.add(ReLU(2))


def test_instance_queries(builder):
    x, d, s, n, c, o = mac_chain(builder)
    r = builder.add(ReLU(3), [o], ExecutionInstance(2))
    graph = builder.build()
    assert graph.execution_instances() == (ExecutionInstance(0), ExecutionInstance(1), ExecutionInstance(2))
    assert graph.instance_vertices(ExecutionInstance(1)) == (d, s, n, c, o)
    assert graph.instance_dependencies()[ExecutionInstance(2)] == {ExecutionInstance(1)}
    assert [e.target for e in graph.users(o)] == [r]


def test_new_execution_instance_ids_are_fresh(builder):
    builder.add(ExternalInput(CT.DataInt8, 2), execution_instance=ExecutionInstance(7))
    assert builder.new_execution_instance().id == 8
