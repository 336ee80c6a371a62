"""The just-in-time executor: graphs -> programs -> connections -> results.

:class:`JITExecutor` runs a :class:`~bss2.graph.Graph` on one or several chips. Execution instances are
processed level by level of their dependency DAG. On-chip hagen instances (matrix-multiply tiles) of a
level are placed round-robin over all synapse arrays of all connections, paired two per program (one per
synram), built on the calling thread and executed on one worker thread per chip, so that building the next
program overlaps with executing the current one and chips run concurrently (at most two programs per chip
are queued). Within a level, the input words of a row block are encoded once for all its column tiles,
only changed weight planes are written, and the row-block sums of a partitioned matmul are accumulated
while later tiles execute. Host instances (transformations) run between levels. Spiking instances (from :func:`bss2.graph.network_to_graph`) are
built and run by :mod:`bss2.exec.spiking`.

Inputs and outputs are keyed by vertex descriptor and batch-major: an ``ExternalInput`` of size N takes a
``(batch, N)`` integer array, and every vertex producing host memory (``DataOutput``, transformations)
gets a ``(batch, size)`` array in the outputs.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import attrs
import numpy as np

from bss2.comm import Connection, close_all, connect_many
from bss2.graph import (
    Addition,
    CADCMembraneReadoutView,
    DataInput,
    DataOutput,
    ExternalInput,
    ExternalSpikeInput,
    Graph,
    MACSynapseArrayView,
    NeuronView,
    SynapseArrayView,
    Transformation,
)

from .errors import ExecError, ExecutionFailed, InputError, UnsupportedGraphError
from .info import ExecutionInfo, InstanceRecord, timed
from .mac import BuiltProgram, ChipState, Tile, build_program, decode_program, pair_tiles

_log = logging.getLogger("bss2.exec")
_cookies = itertools.count(1)
#: Graphs whose analysis (levels, tiles) an executor keeps.
_PLANS = 8
#: Programs queued per chip ahead of its execution (building overlaps executing; memory stays bounded).
_IN_FLIGHT = 2


class JITExecutor:
    """Runs graphs on the chips behind ``connections``.

    ``connections``: a :class:`~bss2.comm.Connection`, a sequence of them, or None for
    :func:`bss2.comm.connect_many` (``BSS2_CONNECTION``, the in-process emulator by default). Connections the
    executor opened itself are closed by :meth:`close`. One executor keeps a configuration cache per chip,
    so use one executor per process (see ``bss2.ml.init_hardware``).
    """

    def __init__(self, connections: Connection | Sequence[Connection] | None = None) -> None:
        if connections is None:
            self.connections: list[Connection] = connect_many()
            self._owns_connections = True
        elif isinstance(connections, Connection):
            self.connections = [connections]
            self._owns_connections = False
        else:
            self.connections = list(connections)
            self._owns_connections = False
            if not self.connections or not all(isinstance(c, Connection) for c in self.connections):
                raise ExecError(f"connections must be Connection objects, got {connections!r}")
        self._states = [ChipState() for _ in self.connections]
        self._workers = [ThreadPoolExecutor(1, thread_name_prefix=f"bss2-chip{i}") for i in range(len(self.connections))]
        self._lock = threading.Lock()  # one run at a time: the chip states are shared
        self._plans: dict[int, tuple[Graph, list[_Level]]] = {}  # id(graph) -> (graph, levels)
        self._runtime: int | None = None
        #: the :class:`ExecutionInfo` of the latest completed :meth:`run` (for callers that do not see it)
        self.last_info: ExecutionInfo | None = None
        self._closed = False

    @property
    def n_chips(self) -> int:
        """Number of chips (connections)."""
        return len(self.connections)

    # ------------------------------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Stop the worker threads and close the connections this executor opened."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            worker.shutdown(wait=True)
        if self._owns_connections:
            close_all(self.connections)

    def __enter__(self) -> JITExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def invalidate_cache(self) -> None:
        """Forget what the chips hold: the next program of each chip resets it and writes everything."""
        for state in self._states:
            state.invalidate()

    # ------------------------------------------------------------------------------------------------ run
    def run(
        self, graph: Graph, inputs: Mapping[int, Any], *, runtime: int | None = None
    ) -> tuple[dict[int, Any], ExecutionInfo]:
        """Execute ``graph`` with ``inputs`` (ExternalInput descriptor -> (batch, size) array).

        Spiking graphs (:func:`bss2.graph.network_to_graph`) need ``runtime``, the duration of every batch
        entry in FPGA cycles (8 ns); their timed-spike input takes one :class:`~bss2.exec.SpikeInput`
        (or a ``(times, labels)`` pair) per batch entry.

        Returns the values of every host-memory vertex (batch-major) and an :class:`ExecutionInfo`.
        Raises :class:`InputError` for bad inputs and :class:`ExecutionFailed` (with instance, chip and
        stage) when a step fails; the executor stays usable either way.
        """
        if self._closed:
            raise ExecError("the executor is closed")
        if not isinstance(graph, Graph):
            raise ExecError(f"run() needs a bss2.graph.Graph, got {type(graph).__name__}")
        with self._lock:
            start = time.perf_counter()
            self._runtime = runtime
            info = ExecutionInfo()
            values = self._external_inputs(graph, inputs, info)
            for level in self._plan(graph):
                self._run_level(graph, level, values, info)
            info.wall_time = time.perf_counter() - start
            self.last_info = info
            return values, info

    # ------------------------------------------------------------------------------------------ helpers
    def _external_inputs(self, graph: Graph, inputs: Mapping[int, np.ndarray], info: ExecutionInfo) -> dict[int, np.ndarray]:
        record = InstanceRecord(instance=-1, chip=None)
        values: dict[int, np.ndarray] = {}
        with timed(record, "preprocess"):
            expected = {int(d) for d in graph.inputs_of_graph()}
            unknown = {int(k) for k in inputs} - expected
            if unknown:
                raise InputError(f"inputs given for vertices {sorted(unknown)} that are not ExternalInputs of the graph ({sorted(expected)})")
            batch: int | None = None
            for d in sorted(expected):
                vertex = graph.vertex(d)
                if isinstance(vertex, ExternalSpikeInput):
                    continue
                if vertex.output_port().type.name == "DataTimedSpikes":
                    from .spiking import spike_inputs

                    given = next((inputs[k] for k in inputs if int(k) == d), [])
                    values[d] = spike_inputs(given, f"v{d}")
                    continue
                if d not in {int(k) for k in inputs}:
                    raise InputError(f"no input given for ExternalInput v{d} ({vertex.output_port()})")
                data = np.asarray(inputs[next(k for k in inputs if int(k) == d)])
                port = vertex.output_port()
                if data.ndim != 2 or data.shape[1] != port.size:
                    raise InputError(f"input for v{d} must have shape (batch, {port.size}), got {data.shape}")
                if data.dtype.kind not in "iub":
                    raise InputError(f"input for v{d} must hold integers, got dtype {data.dtype}")
                if batch is not None and data.shape[0] != batch:
                    raise InputError(f"all inputs need the same batch size, got {batch} and {data.shape[0]} (v{d})")
                batch = data.shape[0]
                low, high = _port_range(port.type.name)
                if data.size and (int(data.min()) < low or int(data.max()) > high):
                    raise InputError(f"input for v{d} ({port.type.name}) must lie in [{low}, {high}], got [{int(data.min())}, {int(data.max())}]")
                values[d] = data
        info.add(record)
        return values

    def _plan(self, graph: Graph) -> list[_Level]:
        """The levels of ``graph`` with their instances sorted by kind (kept for the last few graphs, which
        stay referenced so their ids stay theirs)."""
        entry = self._plans.get(id(graph))
        if entry is not None and entry[0] is graph:
            return entry[1]
        levels = [_Level.of(graph, level) for level in _instance_levels(graph)]
        if len(self._plans) >= _PLANS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[id(graph)] = (graph, levels)
        return levels

    def _run_level(self, graph: Graph, level: _Level, values: dict[int, np.ndarray], info: ExecutionInfo) -> None:
        tiles: list[Tile] = []
        for instance in level.on_chip:
            record = InstanceRecord(instance=instance.id, chip=None)
            with timed(record, "preprocess"):
                try:
                    tiles.extend(_tiles_of(graph, instance, level.tile_specs(graph, instance), values))
                except ExecError:
                    raise
                except Exception as error:
                    raise ExecutionFailed(str(error), instance=instance.id, chip=None, stage="preprocess") from error
            info.add(record)
        if tiles:
            self._run_tiles(graph, tiles, values, info)
            # host-side work placed in the on-chip instances themselves (e.g. a ReLU after a single tile)
            for instance in level.on_chip:
                if level.has_host_work(graph, instance):
                    self._run_host(graph, instance, values, info)
        for instance in level.spiking:
            from .spiking import run_spiking_instance

            run_spiking_instance(self, graph, instance, values, info)
        for instance in level.host:
            self._run_host(graph, instance, values, info)

    def _run_tiles(self, graph: Graph, tiles: list[Tile], values: dict[int, np.ndarray], info: ExecutionInfo) -> None:
        """Build the programs of a level on this thread and execute them on the chips' worker threads.

        At most ``_IN_FLIGHT`` programs per chip are queued (building runs ahead of the chips by that much,
        bounding memory). Results are folded into ``values`` as they arrive; sums of tile outputs
        (:class:`Addition` of the row blocks of a matmul) are accumulated meanwhile, on this thread (see
        :class:`_Sums`).
        """
        sums = _Sums.of(graph, tiles)
        cache: dict[Any, np.ndarray] = {}  # input words per input data: lives as long as this level's tiles
        pending: list[deque[tuple[Future[Any], int, InstanceRecord]]] = [deque() for _ in self.connections]
        failure: BaseException | None = None

        def collect(chip: int) -> None:
            nonlocal failure
            future, _, record = pending[chip].popleft()
            try:
                outputs = future.result()
            except BaseException as error:  # noqa: BLE001 - re-raised below with context
                self._states[chip].invalidate()
                if failure is None:
                    failure = error
            else:
                values.update(outputs)
                if sums and failure is None:
                    # here rather than on the worker: the chips' threads are the busier ones
                    with timed(record, "postprocess"):
                        sums.add(outputs)
            info.add(record)

        programs = pair_tiles(tiles, self.n_chips)
        try:
            for chip, group in programs:
                while len(pending[chip]) >= _IN_FLIGHT:
                    collect(chip)
                if failure is not None:
                    break
                record = InstanceRecord(instance=group[0].instance, chip=chip)
                try:
                    with timed(record, "build"):
                        program = build_program(self._states[chip], group, next(_cookies) & 0xFFFF_FFFF, cache=cache)
                except Exception as error:
                    self._states[chip].invalidate()
                    raise ExecutionFailed(str(error), instance=group[0].instance, chip=chip, stage="build") from error
                record.config_words = program.config_words
                if len(programs) == 1:
                    # nothing to overlap with: run it here and save the hand-over to the worker thread
                    future = Future()
                    try:
                        future.set_result(self._execute(chip, program, record))
                    except BaseException as error:  # noqa: BLE001 - collected like a worker's failure
                        future.set_exception(error)
                else:
                    future = self._workers[chip].submit(self._execute, chip, program, record)
                pending[chip].append((future, chip, record))
        finally:
            # collect every submitted program even if building a later one failed
            for chip in range(self.n_chips):
                while pending[chip]:
                    collect(chip)
        if failure is not None:
            raise failure
        record = InstanceRecord(instance=tiles[0].instance, chip=None)
        with timed(record, "postprocess"):
            values.update(sums.results())
        info.add(record)

    def _execute(self, chip: int, program: BuiltProgram, record: InstanceRecord) -> dict[int, np.ndarray]:
        instance = program.tiles[0].instance
        try:
            result = self.connections[chip].execute(program.words)
        except Exception as error:
            raise ExecutionFailed(f"{type(error).__name__}: {error}", instance=instance, chip=chip, stage="execute") from error
        timing = result.timing
        record.stages["transfer"] = record.stages.get("transfer", 0.0) + timing.transfer + timing.encode
        record.stages["execute"] = record.stages.get("execute", 0.0) + timing.execute
        record.hardware_time += timing.hardware_time
        record.words_sent += int(program.words.size)
        record.words_received += int(result.responses.size)
        try:
            with timed(record, "decode"):
                return decode_program(program, result.responses)
        except Exception as error:
            raise ExecutionFailed(str(error), instance=instance, chip=chip, stage="decode") from error

    def _run_host(self, graph: Graph, instance: Any, values: dict[int, np.ndarray], info: ExecutionInfo) -> None:
        record = InstanceRecord(instance=instance.id, chip=None)
        with timed(record, "postprocess"):
            for d in graph.instance_vertices(instance):
                vertex = graph.vertex(d)
                if int(d) in values or vertex.on_chip or isinstance(vertex, (ExternalInput, ExternalSpikeInput)):
                    continue
                try:
                    arguments = [_edge_value(values, e) for e in graph.inputs(d)]
                    if isinstance(vertex, Transformation):
                        values[int(d)] = vertex.evaluate(*arguments)
                    elif isinstance(vertex, (DataInput, DataOutput)) and arguments:
                        values[int(d)] = arguments[0]
                except KeyError as error:
                    raise ExecutionFailed(f"input {error} of v{int(d)} has no value", instance=instance.id, chip=None, stage="postprocess") from None
                except Exception as error:
                    raise ExecutionFailed(f"{type(vertex).__name__} v{int(d)}: {error}", instance=instance.id, chip=None, stage="postprocess") from error
        info.add(record)


def _port_range(type_name: str) -> tuple[int, int]:
    return {"DataUInt5": (0, 31), "DataInt8": (-128, 127), "UInt5": (0, 31), "Int8": (-128, 127)}.get(type_name, (-(2**63), 2**63 - 1))


def _edge_value(values: Mapping[int, np.ndarray], edge: Any) -> np.ndarray:
    data = values[int(edge.source)]
    if edge.start is None and edge.stop is None:
        return data
    return data[..., edge.start : edge.stop]


class _Level:
    """The instances of one level sorted by kind, with the graph analysis of their MAC tiles (memoised:
    the graph is immutable, only the input data changes between runs)."""

    def __init__(self, on_chip: list[Any], spiking: list[Any], host: list[Any]) -> None:
        self.on_chip, self.spiking, self.host = on_chip, spiking, host
        self._specs: dict[int, list[_TileSpec]] = {}
        self._host_work: dict[int, bool] = {}

    @classmethod
    def of(cls, graph: Graph, level: Sequence[Any]) -> _Level:
        on_chip, spiking, host = [], [], []
        for instance in level:
            kinds = {type(graph.vertex(d)) for d in graph.instance_vertices(instance)}
            if MACSynapseArrayView in kinds:
                on_chip.append(instance)
            elif SynapseArrayView in kinds or NeuronView in kinds:
                spiking.append(instance)
            else:
                host.append(instance)
        return cls(on_chip, spiking, host)

    def tile_specs(self, graph: Graph, instance: Any) -> list[_TileSpec]:
        specs = self._specs.get(instance.id)
        if specs is None:
            specs = _tile_specs(graph, instance)
            self._specs[instance.id] = specs
        return specs

    def has_host_work(self, graph: Graph, instance: Any) -> bool:
        """Whether an on-chip instance also holds host-side vertices (transformations, outputs that are
        not fed by a CADC readout)."""
        work = self._host_work.get(instance.id)
        if work is None:
            produced = {d for spec in self.tile_specs(graph, instance) for d in spec.outputs}
            work = any(
                int(d) not in produced and not graph.vertex(d).on_chip and not isinstance(graph.vertex(d), (ExternalInput, ExternalSpikeInput))
                for d in graph.instance_vertices(instance)
            )
            self._host_work[instance.id] = work
        return work


@attrs.frozen
class _TileSpec:
    """What a MAC view needs from the graph: its vertex, where its inputs come from, where results go."""

    view: MACSynapseArrayView
    source: int  # the vertex whose output feeds the DataInput
    source_start: int | None
    source_stop: int | None
    start: int | None  # slice of the DataInput's output taken by the view
    stop: int | None
    outputs: tuple[int, ...]


def _tile_specs(graph: Graph, instance: Any) -> list[_TileSpec]:
    specs: list[_TileSpec] = []
    synrams: set[int] = set()
    for d in graph.instance_vertices(instance):
        view = graph.vertex(d)
        if not isinstance(view, MACSynapseArrayView):
            continue
        if view.synram in synrams:
            raise UnsupportedGraphError(f"instance {instance.id} has two MAC views on synram {view.synram}")
        synrams.add(view.synram)
        (edge,) = graph.inputs(d)
        data_input = graph.vertex(edge.source)
        if not isinstance(data_input, DataInput):
            raise UnsupportedGraphError(f"MAC view v{int(d)} must be fed by a DataInput")
        (source_edge,) = graph.inputs(edge.source)
        specs.append(_TileSpec(view, int(source_edge.source), source_edge.start, source_edge.stop, edge.start, edge.stop,
                               _downstream_outputs(graph, d)))
    return specs


def _tiles_of(graph: Graph, instance: Any, specs: Sequence[_TileSpec], values: Mapping[int, np.ndarray]) -> list[Tile]:
    """The MAC tiles of an on-chip instance (one per MACSynapseArrayView) with their input data."""
    tiles: list[Tile] = []
    for spec in specs:
        data = values[spec.source]
        if spec.source_start is not None or spec.source_stop is not None:
            data = data[..., spec.source_start : spec.source_stop]
        view = spec.view
        tiles.append(
            Tile(
                instance=instance.id,
                inputs=np.asarray(data[..., spec.start : spec.stop]),
                rows=view.rows,
                columns=view.columns,
                weights=view.weights,
                num_sends=int(view.num_sends),
                wait_between_events=int(view.wait_between_events),
                output_descriptors=spec.outputs,
                synram=int(view.synram),
                chip=int(instance.chip),
            )
        )
    return tiles


def _downstream_outputs(graph: Graph, view: int) -> tuple[int, ...]:
    """DataOutput vertices reached from a MAC view through NeuronView -> CADC readout."""
    outputs = []
    for neuron_edge in graph.users(view):
        if not isinstance(graph.vertex(neuron_edge.target), NeuronView):
            continue
        for readout_edge in graph.users(neuron_edge.target):
            if not isinstance(graph.vertex(readout_edge.target), CADCMembraneReadoutView):
                continue
            for output_edge in graph.users(readout_edge.target):
                if isinstance(graph.vertex(output_edge.target), DataOutput):
                    outputs.append(int(output_edge.target))
    if not outputs:
        raise UnsupportedGraphError(f"MAC view v{int(view)} reaches no DataOutput through NeuronView -> CADC readout")
    return tuple(outputs)


def _instance_levels(graph: Graph) -> list[list[Any]]:
    """Execution instances grouped by depth in their dependency DAG (each level only needs earlier ones)."""
    dependencies = graph.instance_dependencies()
    depth: dict[Any, int] = {}
    for instance in graph.execution_instances():  # topological order
        depth[instance] = 1 + max((depth[d] for d in dependencies.get(instance, ())), default=-1)
    levels: dict[int, list[Any]] = {}
    for instance, level in depth.items():
        levels.setdefault(level, []).append(instance)
    return [levels[k] for k in sorted(levels)]


class _Sums:
    """Saturating sums of tile outputs, accumulated while the tiles' programs finish.

    An :class:`Addition` whose every input is a whole output of a tile of the current level (the row-block
    sum of a partitioned matmul) is computed here instead of after the level: each decoded tile output is
    added into an int16 accumulator (int32 beyond 256 inputs, so nothing wraps) as it is collected, and the
    sum is clipped once at the end - exactly ``saturating_add``. The host instance then finds the value
    present and skips the vertex.
    """

    def __init__(self) -> None:
        self._targets: dict[int, list[int]] = {}  # tile output -> Addition vertices (once per edge)
        self._sums: dict[int, np.ndarray | None] = {}
        self._shapes: dict[int, tuple[int, int, type]] = {}
        self._locks: dict[int, threading.Lock] = {}

    def __bool__(self) -> bool:
        return bool(self._targets)

    @classmethod
    def of(cls, graph: Graph, tiles: Sequence[Tile]) -> _Sums:
        sums = cls()
        produced = {d: t for t in tiles for d in t.output_descriptors}
        candidates: set[int] = set()
        for d in produced:
            for edge in graph.users(d):
                if isinstance(graph.vertex(edge.target), Addition):
                    candidates.add(int(edge.target))
        for target in sorted(candidates):
            vertex = graph.vertex(target)
            edges = graph.inputs(target)
            if type(vertex) is not Addition or len(edges) != vertex.num_inputs:
                continue
            sources = [int(e.source) for e in edges]
            if not all(s in produced and _whole(e, produced[s].columns.size) for s, e in zip(sources, edges)):
                continue
            if any(produced[s].columns.size != vertex.size for s in sources):
                continue
            dtype = np.int16 if vertex.num_inputs <= 256 else np.int32
            sums._shapes[target] = (produced[sources[0]].batch, vertex.size, dtype)
            sums._sums[target] = None
            sums._locks[target] = threading.Lock()
            for s in sources:
                sums._targets.setdefault(s, []).append(target)
        return sums

    def add(self, outputs: Mapping[int, np.ndarray]) -> None:
        for d, y in outputs.items():
            for target in self._targets.get(d, ()):
                with self._locks[target]:
                    total = self._sums[target]
                    if total is None:
                        batch, size, dtype = self._shapes[target]
                        self._sums[target] = y.astype(dtype)
                    else:
                        np.add(total, y, out=total)

    def results(self) -> dict[int, np.ndarray]:
        return {t: np.clip(s, -128, 127).astype(np.int8) for t, s in self._sums.items() if s is not None}


def _whole(edge: Any, size: int) -> bool:
    """Whether ``edge`` passes its source's whole output of ``size`` entries."""
    return edge.start in (None, 0) and edge.stop in (None, size)
