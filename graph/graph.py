"""Signal-flow graphs: the SSA :class:`GraphBuilder`, the immutable :class:`Graph`, execution instances.

Vertices are appended once, with their inputs, which must already exist, so insertion order is a
topological order (the torch.fx model). Every edge is checked at :meth:`GraphBuilder.add`: arity, port
type and size (or a slice of the source's output), the vertex pair's rule, and the execution-instance
rule (only ``Data*`` memory types cross instances, and the instance graph stays acyclic). A rejected
``add`` leaves the builder unchanged. Recurrence (an on-chip loop, e.g. neurons feeding their own PADI
bus) is expressed by re-adding an existing vertex by reference with further inputs; such edges are
marked ``recurrent`` and are the only edges pointing backwards in the vertex order.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Union

import attrs

from .errors import EdgeError, ExecutionInstanceError, GraphTypeError, GraphValueError, PortTypeError
from .ports import Port
from .vertices import Vertex, is_integer

logger = logging.getLogger("bss2.graph")


@attrs.frozen(slots=True, order=True, cache_hash=True)
class ExecutionInstance:
    """One synchronous run on one chip: ``id`` (>= 0) names the instance, ``chip`` (>= 0) is a placement hint."""

    id: int = 0
    chip: int = 0

    def __attrs_post_init__(self) -> None:
        if not is_integer(self.id) or not is_integer(self.chip):
            raise GraphTypeError(f"ExecutionInstance(id={self.id!r}, chip={self.chip!r}): both must be integers")
        if self.id < 0 or self.chip < 0:
            raise GraphValueError(f"ExecutionInstance(id={self.id}, chip={self.chip}): both must be >= 0")


class VertexDescriptor(int):
    """Dense index of a vertex in its graph. ``d[a:b]`` is the slice ``[a, b)`` of its output port."""

    __slots__ = ()

    def __getitem__(self, item: slice) -> InputSlice:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise GraphTypeError(f"a vertex output can only be sliced contiguously, got {item!r}")
        return InputSlice(int(self), item.start, item.stop)

    def __repr__(self) -> str:
        return f"v{int(self)}"


@attrs.frozen(slots=True)
class InputSlice:
    """Output ``[start, stop)`` of vertex ``vertex``; None bounds mean the port's ends."""

    vertex: int
    start: int | None = None
    stop: int | None = None

    def __attrs_post_init__(self) -> None:
        for value in (self.vertex, self.start, self.stop):
            if value is not None and not is_integer(value):
                raise GraphTypeError(f"a slice of a vertex output takes an integer vertex and integer bounds "
                                     f"(integers or None), got v{self.vertex!r}[{self.start!r}:{self.stop!r}]")


InputLike = Union[int, InputSlice]


@attrs.frozen(slots=True)
class Edge:
    """Output ``[start, stop)`` of ``source`` feeds input ``port`` of ``target``.

    ``recurrent`` edges were added by re-adding ``target`` by reference and may point backwards.
    """

    source: int
    target: int
    port: int
    start: int
    stop: int
    recurrent: bool = False


def _resolve(item: Any) -> tuple[int, int | None, int | None]:
    if isinstance(item, InputSlice):  # checked when it was made
        return int(item.vertex), item.start, item.stop
    if not is_integer(item):
        raise GraphTypeError(f"an input must be a vertex descriptor or a slice of one, got {item!r}")
    return int(item), None, None


class _Store:
    """The mutable lists shared by builder and graph (a graph owns a private, never-mutated copy)."""

    __slots__ = ("vertices", "instances", "inputs")

    def __init__(self) -> None:
        self.vertices: list[Vertex] = []
        self.instances: list[ExecutionInstance] = []
        self.inputs: list[list[Edge]] = []


class GraphBuilder:
    """Append-only, validating builder of a :class:`Graph`.

    >>> builder = GraphBuilder()
    >>> x = builder.add(ExternalInput(ConnectionType.DataInt8, 4))   # doctest: +SKIP
    >>> y = builder.add(ReLU(4), inputs=[x])                          # doctest: +SKIP
    >>> graph = builder.build()                                       # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._store = _Store()
        # instance -> instances that consume its data (the instance DAG), first-seen order of instances
        self._successors: dict[ExecutionInstance, set[ExecutionInstance]] = {}
        self._next_instance_id = 0

    def __len__(self) -> int:
        return len(self._store.vertices)

    def vertex(self, descriptor: int) -> Vertex:
        """The vertex of an already added ``descriptor``."""
        return self._store.vertices[descriptor]

    def output_port(self, descriptor: int) -> Port:
        """The output port of an already added ``descriptor``."""
        return self._store.vertices[descriptor].output_port()

    def execution_instance(self, descriptor: int) -> ExecutionInstance:
        """The execution instance of an already added ``descriptor``."""
        return self._store.instances[descriptor]

    def new_execution_instance(self, chip: int = 0) -> ExecutionInstance:
        """A fresh instance whose id is larger than every id used so far (placed on ``chip``)."""
        self._next_instance_id = max(self._next_instance_id, 0)
        instance = ExecutionInstance(self._next_instance_id, chip)
        self._next_instance_id += 1
        return instance

    # ------------------------------------------------------------------------------------- add
    def add(
        self,
        vertex: Vertex | int,
        inputs: Sequence[InputLike] = (),
        execution_instance: ExecutionInstance | None = None,
    ) -> VertexDescriptor:
        """Append ``vertex`` fed by ``inputs`` (descriptors or slices ``d[a:b]``) in ``execution_instance``.

        Passing the descriptor of an existing vertex instead adds ``inputs`` as further (recurrent)
        input edges of it. Raises a :class:`~bss2.graph.errors.GraphError` (also a ValueError or
        TypeError) naming the vertex, port and offending value, and then changes nothing.
        """
        store = self._store
        if isinstance(vertex, Vertex):
            target = len(store.vertices)
            instance = execution_instance if execution_instance is not None else ExecutionInstance()
            if not isinstance(instance, ExecutionInstance):
                raise GraphTypeError(f"execution_instance must be an ExecutionInstance, got {instance!r}")
            edges = self._check_inputs(vertex, target, instance, inputs, first_port=0, existing=False)
            low, high = vertex.arity()
            if not low <= len(edges) <= high:
                raise EdgeError(f"{type(vertex).__name__} takes {low}..{high} inputs, got {len(edges)}")
            new_links = self._check_instances(edges, instance)
            store.vertices.append(vertex)
            store.instances.append(instance)
            store.inputs.append(edges)
            self._successors.setdefault(instance, set())
            if instance.id >= self._next_instance_id:
                self._next_instance_id = instance.id + 1
        elif isinstance(vertex, int) and not isinstance(vertex, bool):
            target = int(vertex)
            if not 0 <= target < len(store.vertices):
                raise GraphValueError(f"vertex descriptor {target} is out of range [0, {len(store.vertices) - 1}]")
            instance = store.instances[target]
            if execution_instance is not None and execution_instance != instance:
                raise ExecutionInstanceError(
                    f"v{target} lives in {instance}, cannot be re-added in {execution_instance}")
            existing = store.inputs[target]
            target_vertex = store.vertices[target]
            edges = self._check_inputs(target_vertex, target, instance, inputs, len(existing), existing=True)
            high = target_vertex.arity()[1]
            if len(existing) + len(edges) > high:
                raise EdgeError(f"{type(target_vertex).__name__} v{target} takes at most {high} inputs, "
                                f"would have {len(existing) + len(edges)}")
            new_links = self._check_instances(edges, instance)
            existing.extend(edges)
        else:
            raise GraphTypeError(f"add() takes a Vertex or a vertex descriptor, got {type(vertex).__name__}")
        for source_instance in new_links:
            self._successors[source_instance].add(instance)
        return VertexDescriptor(target)

    def _check_inputs(self, vertex: Vertex, target: int, instance: ExecutionInstance,
                      inputs: Iterable[InputLike], first_port: int, existing: bool) -> list[Edge]:
        store = self._store
        name = type(vertex).__name__
        if type(inputs) not in (list, tuple) and (
                isinstance(inputs, (int, str, bytes, InputSlice)) or not isinstance(inputs, Iterable)):
            raise GraphTypeError(f"the inputs of {name} must be a sequence of vertex descriptors or slices "
                                 f"(e.g. [x] or [x[0:4]]), got {inputs!r}")
        edges = []
        high = vertex.arity()[1]
        vertices = store.vertices
        for offset, item in enumerate(inputs):
            port_index = first_port + offset
            if type(item) is VertexDescriptor:  # the common case, without a function call
                source, start, stop = int(item), None, None
            else:
                source, start, stop = _resolve(item)
            if not 0 <= source < len(vertices):
                raise EdgeError(f"{name} input {port_index}: vertex v{source} does not exist "
                                f"(descriptors are 0..{len(vertices) - 1}; inputs must be added first)")
            if port_index >= high:
                raise EdgeError(f"{name} takes at most {high} inputs, got input {port_index}")
            source_vertex = store.vertices[source]
            out = source_vertex.output_port()
            port = vertex.input_port(port_index)
            start = 0 if start is None else start
            stop = out.size if stop is None else stop
            if port.type is not out.type:
                raise PortTypeError(f"{name} input {port_index} expects {port.type.value}, "
                                    f"v{source} ({type(source_vertex).__name__}) gives {out.type.value}")
            if not 0 <= start < stop <= out.size:
                raise EdgeError(f"{name} input {port_index}: slice [{start}, {stop}) of v{source} is out of "
                                f"range [0, {out.size}]")
            if port.size and stop - start != port.size:
                raise EdgeError(f"{name} input {port_index} expects size {port.size}, got {stop - start} "
                                f"from v{source} [{start}, {stop})")
            reason = vertex.check_input(port_index, source_vertex, start, stop)
            if reason is not None:
                raise EdgeError(f"{name} input {port_index} from v{source}: {reason}")
            recurrent = existing and source >= target
            source_instance = store.instances[source]
            if source_instance != instance:
                if not out.type.is_memory:
                    raise ExecutionInstanceError(
                        f"{name} input {port_index}: {out.type.value} from v{source} cannot cross from "
                        f"{source_instance} to {instance}; only Data* memory types cross execution instances")
                if recurrent:
                    raise ExecutionInstanceError(
                        f"{name} input {port_index}: a recurrent edge from v{source} cannot cross execution "
                        f"instances (data crosses instances strictly forward)")
            edges.append(Edge(source, target, port_index, start, stop, recurrent))
        return edges

    def _check_instances(self, edges: list[Edge], instance: ExecutionInstance) -> set[ExecutionInstance]:
        """The new instance links of ``edges``; raises if one would close a cycle of instances."""
        store = self._store
        instances = store.instances
        if all(instances[e.source] is instance for e in edges):
            return set()
        links = {instances[e.source] for e in edges} - {instance}
        links -= {src for src in links if instance in self._successors.get(src, ())}
        if links:
            # a new link src -> instance closes a cycle iff instance already reaches src
            reach = self._reachable(instance)
            for source_instance in links:
                if source_instance in reach:
                    raise ExecutionInstanceError(
                        f"an edge from {source_instance} to {instance} would make the execution-instance "
                        f"graph cyclic ({instance} already runs before {source_instance})")
        return links

    def _reachable(self, start: ExecutionInstance) -> set[ExecutionInstance]:
        seen = set()
        stack = list(self._successors.get(start, ()))
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self._successors.get(node, ()))
        return seen

    # ----------------------------------------------------------------------------------- build
    def build(self) -> Graph:
        """The immutable graph of everything added so far (the builder stays usable)."""
        store = self._store
        logger.debug("building a graph of %d vertices in %d execution instances", len(store.vertices),
                     len(self._successors))
        return Graph(store.vertices, store.instances, [tuple(e) for e in store.inputs])


class Graph:
    """An immutable signal-flow graph. Vertex descriptors 0..n-1 are in topological order (recurrent
    edges excepted); each vertex belongs to one :class:`ExecutionInstance`.
    """

    __slots__ = ("_vertices", "_instances", "_inputs", "_cache")

    def __init__(self, vertices: Iterable[Vertex], instances: Iterable[ExecutionInstance],
                 inputs: Iterable[Iterable[Edge]]) -> None:
        object.__setattr__(self, "_vertices", tuple(vertices))
        object.__setattr__(self, "_instances", tuple(instances))
        object.__setattr__(self, "_inputs", tuple(tuple(e) for e in inputs))
        object.__setattr__(self, "_cache", {})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Graph is immutable; build a new one with GraphBuilder")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Graph is immutable")

    # ------------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._vertices)

    def __iter__(self) -> Iterator[VertexDescriptor]:
        return (VertexDescriptor(i) for i in range(len(self._vertices)))

    @property
    def vertices(self) -> tuple[Vertex, ...]:
        """All vertices in descriptor (topological) order."""
        return self._vertices

    def vertex(self, descriptor: int) -> Vertex:
        """The vertex of ``descriptor``."""
        return self._vertices[descriptor]

    def execution_instance(self, descriptor: int) -> ExecutionInstance:
        """The execution instance of ``descriptor``."""
        return self._instances[descriptor]

    def inputs(self, descriptor: int) -> tuple[Edge, ...]:
        """The input edges of ``descriptor`` in port order."""
        return self._inputs[descriptor]

    def edges(self) -> Iterator[Edge]:
        """Every edge, grouped by target in descriptor order."""
        for edges in self._inputs:
            yield from edges

    def users(self, descriptor: int) -> tuple[Edge, ...]:
        """The edges leaving ``descriptor``."""
        users = self._cache.get("users")
        if users is None:
            users = [[] for _ in self._vertices]
            for edge in self.edges():
                users[edge.source].append(edge)
            users = tuple(tuple(u) for u in users)
            self._cache["users"] = users
        return users[descriptor]  # type: ignore[no-any-return]

    def execution_instances(self) -> tuple[ExecutionInstance, ...]:
        """All instances in a topological order of their dependencies (ties: first appearance)."""
        order = self._cache.get("instance_order")
        if order is None:
            deps = self.instance_dependencies()
            first_seen = list(dict.fromkeys(self._instances))
            indegree = {inst: len(deps[inst]) for inst in first_seen}
            successors: dict[ExecutionInstance, list[ExecutionInstance]] = {inst: [] for inst in first_seen}
            for inst, sources in deps.items():
                for source in sources:
                    successors[source].append(inst)
            rank = {inst: i for i, inst in enumerate(first_seen)}
            ready = [(rank[i], i) for i in first_seen if indegree[i] == 0]
            heapq.heapify(ready)
            result = []
            while ready:
                _, inst = heapq.heappop(ready)
                result.append(inst)
                for succ in successors[inst]:
                    indegree[succ] -= 1
                    if indegree[succ] == 0:
                        heapq.heappush(ready, (rank[succ], succ))
            order = tuple(result)
            self._cache["instance_order"] = order
        return order  # type: ignore[no-any-return]

    def instance_dependencies(self) -> dict[ExecutionInstance, frozenset[ExecutionInstance]]:
        """instance -> the instances whose memory output it reads (must run before it)."""
        deps = self._cache.get("deps")
        if deps is None:
            collected: dict[ExecutionInstance, set[ExecutionInstance]] = {i: set() for i in self._instances}
            for target, edges in enumerate(self._inputs):
                inst = self._instances[target]
                for edge in edges:
                    source_inst = self._instances[edge.source]
                    if source_inst != inst:
                        collected[inst].add(source_inst)
            deps = {k: frozenset(v) for k, v in collected.items()}
            self._cache["deps"] = deps
        return deps  # type: ignore[no-any-return]

    def instance_vertices(self, instance: ExecutionInstance) -> tuple[VertexDescriptor, ...]:
        """The descriptors of ``instance``, in topological order."""
        by_instance = self._cache.get("by_instance")
        if by_instance is None:
            collected: dict[ExecutionInstance, list[VertexDescriptor]] = {}
            for i, inst in enumerate(self._instances):
                collected.setdefault(inst, []).append(VertexDescriptor(i))
            by_instance = {k: tuple(v) for k, v in collected.items()}
            self._cache["by_instance"] = by_instance
        return by_instance.get(instance, ())  # type: ignore[no-any-return]

    def inputs_of_graph(self) -> tuple[VertexDescriptor, ...]:
        """The graph's inputs: every vertex without input ports that takes host data (ExternalInput)."""
        return tuple(VertexDescriptor(i) for i, v in enumerate(self._vertices)
                     if not v.on_chip and not v.is_transformation and v.arity()[1] == 0)

    def outputs_of_graph(self) -> tuple[VertexDescriptor, ...]:
        """The graph's results: vertices giving host memory (``Data*``) that no other vertex reads."""
        return tuple(d for d in self if not self.users(d) and self._vertices[d].output_port().type.is_memory)

    def find(self, kind: type[Vertex]) -> tuple[VertexDescriptor, ...]:
        """Descriptors of every vertex of type ``kind``."""
        return tuple(VertexDescriptor(i) for i, v in enumerate(self._vertices) if isinstance(v, kind))

    # --------------------------------------------------------------------------- equality, output
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self._instances == other._instances and self._inputs == other._inputs
                and len(self._vertices) == len(other._vertices)
                and all(type(a) is type(b) and a == b for a, b in zip(self._vertices, other._vertices)))

    def __hash__(self) -> int:
        return hash(self.structural_hash())

    def structural_hash(self) -> str:
        """sha256 hex digest of a canonical serialisation; equal graphs hash equal in every process."""
        from .io import structural_hash
        digest = self._cache.get("hash")
        if digest is None:
            digest = structural_hash(self)
            self._cache["hash"] = digest
        return digest  # type: ignore[no-any-return]

    def to_table(self) -> str:
        """A readable table (one line per vertex), like torch.fx's ``print_tabular``."""
        from .io import to_table
        return to_table(self)

    def to_dot(self) -> str:
        """Graphviz dot source (one cluster per execution instance)."""
        from .io import to_dot
        return to_dot(self)

    def to_yaml(self) -> str:
        """YAML text that :meth:`from_yaml` turns back into an equal graph."""
        from .io import to_yaml
        return to_yaml(self)

    @staticmethod
    def from_yaml(text: str) -> Graph:
        """The graph serialised by :meth:`to_yaml`, re-validated edge by edge."""
        from .io import from_yaml
        return from_yaml(text)

    def __repr__(self) -> str:
        return f"<Graph: {len(self._vertices)} vertices, {len(set(self._instances))} execution instances>"

    def __str__(self) -> str:
        return self.to_table()
