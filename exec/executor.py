"""The just-in-time executor: graphs -> programs -> connections -> results.

:class:`JITExecutor` runs a :class:`~bss2.graph.Graph` on one or several chips. Everything about a graph
that does not depend on the input data (levels of its execution-instance DAG, tile specs, placement, weight
images, host steps, row-block sums) is computed once and kept for the last few graphs. Execution instances
are processed level by level. When all matrix-multiply tiles of the graph fit side by side onto the synrams
of the chips (:mod:`bss2.exec.placement`: column packing), they keep their place for every run and a
repeated run sends no weight words; tiles of a level sharing a synram run in successive phases of one
program. Otherwise the tiles of a level are placed round-robin over all synapse arrays of all connections,
paired two per program (one per synram). A level of one program builds and runs it on the calling thread;
several programs are built on the calling thread and executed on one worker thread per chip, so that
building the next program overlaps with executing the current one and chips run concurrently (at most two
programs per chip are queued). Within a level, the input words of a row block are encoded once for all its
column tiles, only changed weight planes are written, and the row-block sums of a partitioned matmul are
accumulated while later tiles execute. Host transformations run between levels. Spiking instances (from
:func:`bss2.graph.network_to_graph`) are built and run by :mod:`bss2.exec.spiking`.

A placed graph at small batches (up to ``_LEAN_VECTORS`` vectors per program) takes the *lean path*: its
programs are prepared once per plan, and a run encodes and checks each program's inputs in one pass that
reads the source value in place (:func:`bss2.hal.hagen.encode_gathered`), adds the configuration words the
chip state asks for and cuts the tiles' outputs from the CADC answers and sums them in compiled passes
(:mod:`bss2.exec._kernels`), without per-tile objects. It sends the same programs as the
level-by-level path and leaves the same chip state (``JITExecutor.lean = False`` switches it off).

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

from bss2.comm import Connection, ExecutionResult, close_all, connect_many
from bss2.graph import (
    Addition,
    CADCMembraneReadoutView,
    ConvertingReLU,
    DataInput,
    DataOutput,
    ExternalSpikeInput,
    Graph,
    MACSynapseArrayView,
    NeuronView,
    SynapseArrayView,
    Transformation,
    Unfold,
)
from bss2.graph.vertices import converting_relu, is_integer
from bss2.hal import HalValueError, hagen
from bss2.hal.wire import TIMER_LIMIT

from ._kernels import cut_samples, saturate_int8, saturated_sum
from .errors import ExecError, ExecutionFailed, InputError, UnsupportedGraphError
from .info import ExecutionInfo, InstanceRecord
from .mac import (
    _END_HEAD,
    _end_response,
    BuiltProgram,
    ChipState,
    Tile,
    build_program,
    configuration_words,
    decode_program,
    pair_tiles,
    response_samples,
    synram_image,
)
from .placement import Slot, place

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
            if not isinstance(connections, Sequence):
                raise ExecError(f"connections must be a Connection or a sequence of them, got {connections!r}")
            self.connections = list(connections)
            self._owns_connections = False
            if not self.connections or not all(isinstance(c, Connection) for c in self.connections):
                raise ExecError(f"connections must be Connection objects, got {connections!r}")
            seen: dict[int, int] = {}
            for index, connection in enumerate(self.connections):
                if id(connection) in seen:  # one chip would hold two chips' weights, each overwriting the other's
                    raise ExecError(f"connections[{index}] is connections[{seen[id(connection)]}] again: every chip needs its "
                                    "own connection")
                seen[id(connection)] = index
        self._states = [ChipState() for _ in self.connections]
        self._workers = [ThreadPoolExecutor(1, thread_name_prefix=f"bss2-chip{i}") for i in range(len(self.connections))]
        self._lock = threading.Lock()  # one run at a time: the chip states are shared
        self._plans: dict[int, _Plan] = {}  # id(graph) -> its plan
        self._runtime: int | None = None
        #: the :class:`ExecutionInfo` of the latest completed :meth:`run` (for callers that do not see it)
        self.last_info: ExecutionInfo | None = None
        #: whether placed graphs run their small levels on the lean path (the same programs and results as
        #: the level-by-level path, with less host work per program; see :meth:`run`)
        self.lean = True
        self._closed = False

    @property
    def n_chips(self) -> int:
        """Number of chips (connections)."""
        return len(self.connections)

    # ------------------------------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Stop the worker threads and close the connections this executor opened; a :meth:`run` in progress
        on another thread finishes first."""
        with self._lock:
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
        if not isinstance(graph, Graph):
            raise ExecError(f"run() needs a bss2.graph.Graph, got {type(graph).__name__}")
        if not isinstance(inputs, Mapping):
            raise InputError(f"inputs must be a mapping from ExternalInput vertex to data, got {type(inputs).__name__}")
        if runtime is not None:
            if not is_integer(runtime):
                raise InputError(f"runtime must be an integer number of FPGA cycles, got {runtime!r}")
            runtime = runtime.__index__()
            if not 0 < runtime < TIMER_LIMIT:
                raise InputError(f"runtime = {runtime} cycles: allowed range [1, {TIMER_LIMIT - 1}]")
        with self._lock:
            if self._closed:
                raise ExecError("the executor is closed")
            start = time.perf_counter()
            for connection, state in zip(self.connections, self._states):
                state.claim(connection.programs_executed)  # forgotten if another user ran programs on the chip
            self._runtime = runtime
            info = ExecutionInfo()
            plan = self._plan(graph)
            values, record = self._external_inputs(plan, inputs)
            lean = plan.lean() if self.lean else None
            if lean is not None and values[plan.inputs[0][0]].shape[0]:
                self._run_lean(plan, lean, values, info, record)
            else:
                info.add(record)
                for level in plan.levels:
                    self._run_level(plan, level, values, info)
            info.wall_time = time.perf_counter() - start
            self.last_info = info
            return values, info

    # ------------------------------------------------------------------------------------------ helpers
    def _external_inputs(self, plan: _Plan, inputs: Mapping[int, Any]) -> tuple[dict[int, Any], InstanceRecord]:
        """The checked inputs by vertex, and the record of the host-side work (its preprocess stage so far)."""
        record = InstanceRecord(instance=-1, chip=None)
        started = time.perf_counter()
        values: dict[int, Any] = {}
        given = {}
        for key, value in inputs.items():
            if not is_integer(key):  # no silent int() of strings or floats
                raise InputError(f"input keys must be ExternalInput vertex ids (integers), got {key!r}")
            given[key.__index__()] = value
        unknown = given.keys() - plan.input_set
        if unknown:
            raise InputError(f"inputs given for vertices {sorted(unknown)} that are not ExternalInputs of the graph ({sorted(plan.input_set)})")
        batch: int | None = None
        for d, kind, port, low, high in plan.inputs:
            if kind == "spikes":
                continue
            if kind == "timed":
                from .spiking import spike_inputs

                values[d] = spike_inputs(given.get(d, []), f"v{d}")
                continue
            if d not in given:
                raise InputError(f"no input given for ExternalInput v{d} ({port})")
            try:
                data = np.asarray(given[d])
            except (ValueError, TypeError) as error:  # ragged nested sequences
                raise InputError(f"input for v{d} must be a (batch, {port.size}) integer array: {error}") from None
            if data.ndim != 2 or data.shape[1] != port.size:
                raise InputError(f"input for v{d} must have shape (batch, {port.size}), got {data.shape}")
            if data.dtype.kind not in "iub":
                raise InputError(f"input for v{d} must hold integers, got dtype {data.dtype}")
            if batch is not None and data.shape[0] != batch:
                raise InputError(f"all inputs need the same batch size, got {batch} and {data.shape[0]} (v{d})")
            batch = data.shape[0]
            if data.size:
                highest = int(data.max())
                lowest = int(data.min()) if data.dtype.kind == "i" or low > 0 else 0  # unsigned data: never below 0
                if lowest < low or highest > high:
                    lowest = int(data.min())  # the true minimum for the message
                    raise InputError(f"input for v{d} ({port.type.name}) must lie in [{low}, {high}], got [{lowest}, {highest}]")
            values[d] = data
        record.stages["preprocess"] = time.perf_counter() - started
        return values, record

    def _plan(self, graph: Graph) -> _Plan:
        """The analysis of ``graph`` (levels, tiles, placement, host steps), kept for the last few graphs,
        which stay referenced so their ids stay theirs."""
        entry = self._plans.get(id(graph))
        if entry is not None and entry.graph is graph:
            return entry
        plan = _Plan.of(graph, self.n_chips)
        if len(self._plans) >= _PLANS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[id(graph)] = plan
        return plan

    # ------------------------------------------------------------------------------------------ lean path
    def _run_lean(self, plan: _Plan, levels: list[_LeanLevel], values: dict[int, Any], info: ExecutionInfo,
                  host: InstanceRecord) -> None:
        """Run a placed graph whose levels were prepared once for small batches (:meth:`_Plan.lean`).

        A level of matrix-multiply tiles gathers each program's inputs straight into the encoder's layout
        (no :class:`Tile` objects), encodes and checks them in one pass, adds the configuration words the
        chip state asks for (:func:`~bss2.exec.mac.configuration_words`, so the cache stays exact), runs
        the program on its chip and cuts the tiles' outputs from the CADC samples. The programs are word
        for word those of the level-by-level path; a level whose tiles do not fit the prepared programs
        (unequal batches, more than ``_LEAN_VECTORS`` vectors per program) runs level by level instead.
        The host-side work of all levels goes into ``host``, the record of the inputs' checks.
        """
        records: list[InstanceRecord] = []
        try:
            for lean in levels:
                if lean.programs and not self._run_lean_level(lean, values, records, host):
                    self._run_level(plan, lean.level, values, info)
                    continue
                if lean.host:
                    started = time.perf_counter()
                    for instance, d, step, edges in lean.host:
                        if d in values:  # computed already (a row-block sum)
                            continue
                        try:
                            values[d] = step.evaluate(*[values[source] if part is None else values[source][..., part]
                                                        for source, part in edges])
                        except KeyError as error:
                            raise ExecutionFailed(f"input {error} of v{d} has no value", instance=instance, chip=None,
                                                  stage="postprocess") from None
                        except Exception as error:
                            raise ExecutionFailed(f"{type(step.vertex).__name__} v{d}: {error}", instance=instance, chip=None,
                                                  stage="postprocess") from error
                    host.stages["postprocess"] = host.stages.get("postprocess", 0.0) + time.perf_counter() - started
        finally:
            records.append(host)
            info.add_all(records)

    def _run_lean_level(self, lean: _LeanLevel, values: dict[int, Any], records: list[InstanceRecord],
                        host: InstanceRecord) -> bool:
        """The programs of one level on the lean path; False (nothing done) where it does not apply."""
        started = time.perf_counter()
        # every program's inputs are gathered, encoded and checked before any program changes a chip's state
        encoded = []
        for program in lean.programs:
            gathered = program.gather(values)
            if gathered is None:
                return False
            encoded.append((program, program.encode(*gathered), gathered[1]))
        host.stages["preprocess"] = host.stages.get("preprocess", 0.0) + time.perf_counter() - started
        if len(encoded) == 1:
            program, words, vectors = encoded[0]
            record = InstanceRecord(instance=program.instance, chip=program.chip)
            records.append(record)
            try:
                outputs = self._lean_execute(program, self._lean_words(program, words, record), vectors, record)
            except BaseException:
                self._states[program.chip].invalidate()
                raise
            values.update(outputs)
        else:
            self._run_lean_many(encoded, values, records)
        if lean.sums:
            started = time.perf_counter()
            for target, sources, dtype in lean.sums:  # saturating row-block sums (see _Sums)
                values[target] = saturated_sum([values[source] for source in sources], dtype)
            host.stages["postprocess"] = host.stages.get("postprocess", 0.0) + time.perf_counter() - started
        return True

    def _run_lean_many(self, encoded: list[tuple[_LeanProgram, np.ndarray, int]], values: dict[int, Any],
                       records: list[InstanceRecord]) -> None:
        """Several lean programs of a level: each runs on its chip's worker thread, so chips run concurrently."""
        pending: deque[tuple[Future[Any], _LeanProgram, InstanceRecord]] = deque()
        failure: BaseException | None = None
        try:
            for program, words, vectors in encoded:
                record = InstanceRecord(instance=program.instance, chip=program.chip)
                records.append(record)
                try:
                    program_words = self._lean_words(program, words, record)
                except BaseException as error:
                    self._states[program.chip].invalidate()
                    failure = error
                    break
                pending.append((self._workers[program.chip].submit(self._lean_execute, program, program_words, vectors, record),
                                program, record))
        finally:
            while pending:  # every submitted program is collected, even after a failure
                future, program, record = pending.popleft()
                try:
                    outputs = future.result()
                except BaseException as error:  # noqa: BLE001 - re-raised below
                    self._states[program.chip].invalidate()
                    if failure is None:
                        failure = error
                else:
                    values.update(outputs)
        if failure is not None:
            raise failure

    def _lean_words(self, program: _LeanProgram, vectors: np.ndarray, record: InstanceRecord) -> tuple[list[np.ndarray], int]:
        """The program's words in parts (the configuration words the chip state asks for, as they come, then
        ``vectors`` and END in one array) and its cookie: the connection runs their concatenation, and the
        emulator stores cached weight blocks without joining them into one array."""
        started = time.perf_counter()
        cookie = next(_cookies) & 0xFFFF_FFFF
        try:
            parts, _, config_words = configuration_words(self._states[program.chip], program.synrams, program.images)
        except Exception as error:
            raise ExecutionFailed(str(error), instance=program.instance, chip=program.chip, stage="build") from error
        tail = np.empty(vectors.size + 1, np.uint64)
        tail[:-1] = vectors
        tail[-1] = _END_HEAD | cookie
        parts.append(tail)
        record.config_words = config_words
        record.stages["build"] = time.perf_counter() - started
        return parts, cookie

    def _lean_execute(self, program: _LeanProgram, built: tuple[list[np.ndarray], int], vectors: int,
                      record: InstanceRecord) -> dict[int, np.ndarray]:
        """Run one lean program on its chip and cut its tiles' outputs (int8) from the CADC samples."""
        parts, cookie = built
        try:
            result = self._execute_words(program.chip, parts)
        except Exception as error:
            raise ExecutionFailed(f"{type(error).__name__}: {error}", instance=program.instance, chip=program.chip,
                                  stage="execute") from error
        timing = result.timing
        stages = record.stages
        stages["transfer"] = timing.transfer + timing.encode
        stages["execute"] = timing.execute
        record.hardware_time = timing.hardware_time
        record.words_sent = sum(part.size for part in parts)
        responses = result.responses
        record.words_received = responses.size
        started = time.perf_counter()
        try:
            return program.decode(responses, cookie, vectors)
        except Exception as error:
            raise ExecutionFailed(str(error), instance=program.instance, chip=program.chip, stage="decode") from error
        finally:
            stages["decode"] = time.perf_counter() - started

    def _run_level(self, plan: _Plan, level: _Level, values: dict[int, Any], info: ExecutionInfo) -> None:
        # one record for the level's host-side work (tile inputs, row-block sums, transformations)
        record = InstanceRecord(instance=level.specs[0].instance if level.specs else level.first_instance, chip=None)
        if level.specs:
            started = time.perf_counter()
            try:
                tiles = [spec.tile(values) for spec in level.specs]
            except ExecError:
                raise
            except Exception as error:
                raise ExecutionFailed(str(error), instance=record.instance, chip=None, stage="preprocess") from error
            record.stages["preprocess"] = time.perf_counter() - started
            self._run_tiles(plan, level, tiles, values, info, record)
        for instance in level.spiking:
            from .spiking import run_spiking_instance

            run_spiking_instance(self, plan.graph, instance, values, info)
        if level.host_steps:
            self._run_host(level, values, record)
        if record.stages:
            info.add(record)

    def _run_tiles(self, plan: _Plan, level: _Level, tiles: list[Tile], values: dict[int, Any], info: ExecutionInfo,
                   level_record: InstanceRecord) -> None:
        """Build the programs of a level on this thread and execute them on the chips' worker threads.

        At most ``_IN_FLIGHT`` programs per chip are queued (building runs ahead of the chips by that much,
        bounding memory). Results are folded into ``values`` as they arrive; sums of tile outputs
        (:class:`Addition` of the row blocks of a matmul) are accumulated meanwhile, on this thread (see
        :class:`_Sums`). A level with a single program runs it on this thread (nothing to overlap with).
        """
        sums = _Sums(level.sums) if level.sums else None
        placed = level.placed is not None
        programs = level.programs(tiles) if placed else pair_tiles(tiles, self.n_chips)
        images = plan.images(level, tiles) if placed else None
        if len(programs) == 1:
            self._run_single(programs[0], images, values, info, sums)
        else:
            self._run_many(programs, images, values, info, sums)
        if sums is not None:
            started = time.perf_counter()
            values.update(sums.results())
            level_record.stages["postprocess"] = level_record.stages.get("postprocess", 0.0) + time.perf_counter() - started

    def _build(self, chip: int, group: list[Tile], images: Mapping[int, Mapping[int, np.ndarray]] | None,
               cache: dict[Any, np.ndarray] | None = None) -> tuple[BuiltProgram, InstanceRecord]:
        """The program of ``group`` on ``chip`` and its record (build time, configuration words); a failure
        other than bad inputs (raised before the chip state changed) drops the chip's cached state and raises
        :class:`ExecutionFailed` naming the instance, chip and stage."""
        record = InstanceRecord(instance=group[0].instance, chip=chip)
        started = time.perf_counter()
        try:
            program = build_program(self._states[chip], group, next(_cookies) & 0xFFFF_FFFF, cache=cache,
                                    images=images[chip] if images is not None else None)
        except InputError:
            raise
        except Exception as error:
            self._states[chip].invalidate()
            raise ExecutionFailed(str(error), instance=group[0].instance, chip=chip, stage="build") from error
        record.stages["build"] = time.perf_counter() - started
        record.config_words = program.config_words
        return program, record

    def _run_single(self, program_tiles: tuple[int, list[Tile]], images: Mapping[int, Mapping[int, np.ndarray]] | None,
                    values: dict[int, Any], info: ExecutionInfo, sums: _Sums | None) -> None:
        """A level of one program: nothing to overlap with, so it is built and run on this thread."""
        chip, group = program_tiles
        program, record = self._build(chip, group, images)
        try:
            outputs = self._execute(chip, program, record)
        except BaseException:
            self._states[chip].invalidate()
            info.add(record)
            raise
        values.update(outputs)
        if sums is not None:
            started = time.perf_counter()
            sums.add(outputs)
            record.stages["postprocess"] = time.perf_counter() - started
        info.add(record)

    def _run_many(self, programs: list[tuple[int, list[Tile]]], images: Mapping[int, Mapping[int, np.ndarray]] | None,
                  values: dict[int, Any], info: ExecutionInfo, sums: _Sums | None) -> None:
        """Several programs: built here, executed on the chips' worker threads (see :meth:`_run_tiles`)."""
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
                if sums is not None and failure is None:
                    # here rather than on the worker: the chips' threads are the busier ones
                    started = time.perf_counter()
                    sums.add(outputs)
                    record.stages["postprocess"] = record.stages.get("postprocess", 0.0) + time.perf_counter() - started
            info.add(record)

        cache: dict[Any, np.ndarray] = {}  # input words per input data: lives as long as this level's tiles
        try:
            for chip, group in programs:
                while len(pending[chip]) >= _IN_FLIGHT:
                    collect(chip)
                if failure is not None:
                    break
                program, record = self._build(chip, group, images, cache)
                pending[chip].append((self._workers[chip].submit(self._execute, chip, program, record), chip, record))
        finally:
            # collect every submitted program even if building a later one failed
            for chip in range(self.n_chips):
                while pending[chip]:
                    collect(chip)
        if failure is not None:
            raise failure

    def _execute_words(self, chip: int, words: np.ndarray | list[np.ndarray]) -> ExecutionResult:
        """Run ``words`` on the chip, counted as this executor's own program (see :meth:`ChipState.claim`)."""
        try:
            return self.connections[chip].execute(words)
        finally:
            self._states[chip].seen += 1

    def _execute(self, chip: int, program: BuiltProgram, record: InstanceRecord) -> dict[int, np.ndarray]:
        instance = program.tiles[0].instance
        try:
            result = self._execute_words(chip, program.words)
        except Exception as error:
            raise ExecutionFailed(f"{type(error).__name__}: {error}", instance=instance, chip=chip, stage="execute") from error
        timing = result.timing
        stages = record.stages
        stages["transfer"] = stages.get("transfer", 0.0) + timing.transfer + timing.encode
        stages["execute"] = stages.get("execute", 0.0) + timing.execute
        record.hardware_time += timing.hardware_time
        record.words_sent += int(program.words.size)
        record.words_received += int(result.responses.size)
        started = time.perf_counter()
        try:
            return decode_program(program, result.responses)
        except Exception as error:
            raise ExecutionFailed(str(error), instance=instance, chip=chip, stage="decode") from error
        finally:
            stages["decode"] = stages.get("decode", 0.0) + time.perf_counter() - started

    def _run_host(self, level: _Level, values: dict[int, Any], record: InstanceRecord) -> None:
        """The transformations of a level, precompiled in the plan."""
        started = time.perf_counter()
        for instance, d, vertex, edges in level.host_steps:
            if d in values:  # computed already (a row-block sum, see _Sums)
                continue
            try:
                values[d] = vertex.evaluate(*[values[source] if whole else values[source][..., lo:hi] for source, whole, lo, hi in edges])
            except KeyError as error:
                raise ExecutionFailed(f"input {error} of v{d} has no value", instance=instance, chip=None, stage="postprocess") from None
            except Exception as error:
                raise ExecutionFailed(f"{type(vertex.vertex).__name__} v{d}: {error}", instance=instance, chip=None, stage="postprocess") from error
        record.stages["postprocess"] = record.stages.get("postprocess", 0.0) + time.perf_counter() - started


def _port_range(type_name: str) -> tuple[int, int]:
    return {"DataUInt5": (0, 31), "DataInt8": (-128, 127), "DataInt32": (-(2**31), 2**31 - 1), "UInt5": (0, 31),
            "Int8": (-128, 127)}.get(type_name, (-(2**63), 2**63 - 1))


class _Plan:
    """Everything about a graph that does not depend on the input data, computed once per graph: its
    ExternalInputs, its levels (tile specs, host steps, row-block sums) and, where the graph fits onto
    the chips, its persistent column-packed placement and the weight images of the synrams."""

    def __init__(self, graph: Graph, inputs: list[tuple[int, str, Any, int, int]], levels: list[_Level]) -> None:
        self.graph = graph
        self.inputs = inputs
        self.input_set = {d for d, *_ in inputs}
        self.levels = levels
        self._images: dict[int, dict[int, np.ndarray]] | None = None
        self._lean: list[_LeanLevel] | None | bool = None

    @classmethod
    def of(cls, graph: Graph, n_chips: int) -> _Plan:
        inputs = []
        for d in sorted(int(d) for d in graph.inputs_of_graph()):
            vertex = graph.vertex(d)
            port = vertex.output_port()
            if isinstance(vertex, ExternalSpikeInput):
                kind = "spikes"
            elif port.type.name == "DataTimedSpikes":
                kind = "timed"
            else:
                kind = "data"
            inputs.append((d, kind, port, *_port_range(port.type.name)))
        levels = [_Level.of(graph, level) for level in _instance_levels(graph)]
        slots = place([[spec.width for spec in level.specs] for level in levels], n_chips)
        if slots is not None:
            for level, level_slots in zip(levels, slots):
                level.place(level_slots)
        return cls(graph, inputs, levels)

    def lean(self) -> list[_LeanLevel] | None:
        """Per level, its programs prepared for the lean path (:meth:`JITExecutor._run_lean`), or None for a
        graph that is not placed, has spiking instances or inputs other than data (prepared on first use)."""
        if self._lean is None:
            eligible = (bool(self.inputs) and all(kind == "data" for _, kind, *_ in self.inputs)
                        and not any(level.spiking for level in self.levels)
                        and all(level.placed is not None for level in self.levels if level.specs))
            self._lean = [_LeanLevel(level, self.images()) for level in self.levels] if eligible else False
        return self._lean if self._lean is not False else None  # type: ignore[return-value]

    def images(self, level: _Level | None = None, tiles: Sequence[Tile] = ()) -> dict[int, dict[int, np.ndarray]]:
        """chip -> synram -> physical weights of every placed tile of the graph (built on first use)."""
        if self._images is None:
            per_slot: dict[tuple[int, int], list[Tile]] = {}
            for each in self.levels:
                for spec in each.specs:
                    tile = spec.tile(None)
                    per_slot.setdefault((tile.chip, tile.synram), []).append(tile)
            images: dict[int, dict[int, np.ndarray]] = {}
            for (chip, synram), placed in per_slot.items():
                images.setdefault(chip, {})[synram] = synram_image(placed)
            self._images = images
        return self._images


class _Level:
    """The instances of one level: the tile specs of its on-chip instances, its spiking instances, the
    host steps that follow (transformations, in instance order) and the row-block sums of its tiles."""

    def __init__(self, specs: list[_TileSpec], spiking: list[Any], host_steps: list[tuple[int, int, Any, list[tuple[int, bool, Any, Any]]]],
                 sums: dict[int, list[int]], sum_dtypes: dict[int, Any]) -> None:
        self.specs, self.spiking, self.host_steps = specs, spiking, host_steps
        self.sums = _SumPlan(sums, sum_dtypes) if sums else None
        self.placed: list[Slot] | None = None
        self.first_instance = -1

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
        specs: list[_TileSpec] = []
        steps: list[tuple[int, int, Any, list[tuple[int, bool, Any, Any]]]] = []
        for instance in on_chip:
            instance_specs = _tile_specs(graph, instance)
            specs.extend(instance_specs)
            produced = {d for spec in instance_specs for d in spec.outputs}
            steps.extend(_host_steps(graph, instance, produced))
        for instance in host:
            steps.extend(_host_steps(graph, instance, set()))
        sums, dtypes = _sum_targets(graph, specs)
        result = cls(specs, spiking, steps, sums, dtypes)
        result.first_instance = level[0].id if level else -1
        return result

    def place(self, slots: Sequence[Slot]) -> None:
        """Fix the tiles of this level to their persistent slots (columns packed, see :mod:`.placement`)."""
        self.placed = list(slots)
        for spec, slot in zip(self.specs, slots):
            columns = np.arange(slot.start, slot.start + spec.width)
            columns.flags.writeable = False
            spec.columns, spec.synram, spec.chip, spec.phase = columns, slot.synram, slot.chip, slot.phase

    def programs(self, tiles: list[Tile]) -> list[tuple[int, list[Tile]]]:
        """The programs of placed tiles: per chip, the tiles with equal keys in one program, tiles sharing
        a synram in successive phases (separate programs for large batches, so building overlaps executing)."""
        groups: dict[tuple[int, tuple[int, int, int]], list[Tile]] = {}
        for tile in tiles:
            groups.setdefault((tile.chip, tile.key()), []).append(tile)
        programs: list[tuple[int, list[Tile]]] = []
        for (chip, key), group in groups.items():
            seen: dict[int, int] = {}
            for tile in group:  # phases numbered per program (tiles of other keys may sit on the synram)
                tile.phase = seen.get(tile.synram, 0)
                seen[tile.synram] = tile.phase + 1
            n_phases = max(seen.values())
            if n_phases > 1 and key[0] * n_phases > _PHASE_SPLIT_VECTORS:
                for phase in range(n_phases):
                    part = [t for t in group if t.phase == phase]
                    for t in part:
                        t.phase = 0
                    programs.append((chip, part))
            else:
                programs.append((chip, group))
        return programs


#: Vectors of a multi-phase program above which its phases become separate programs.
_PHASE_SPLIT_VECTORS = 512


#: Vectors of a program up to which a level of a placed graph runs on the lean path (larger batches
#: gain nothing from it and keep the level-by-level path's chunked encoding and overlap).
_LEAN_VECTORS = _PHASE_SPLIT_VECTORS


class _LeanProgram:
    """The static part of one program of a placed level (chip, synrams, vector windows, event parameters,
    the weight images of its synrams) and of its tiles: where each tile's inputs come from and go (driver
    rows of a synram in a vector window) and where its outputs lie among the CADC columns."""

    def __init__(self, chip: int, specs: Sequence[_TileSpec], images: Mapping[int, np.ndarray]) -> None:
        self.chip = chip
        self.synrams = tuple(sorted({spec.synram for spec in specs}))
        self.num_sends = int(specs[0].view.num_sends)
        self.wait = int(specs[0].view.wait_between_events)
        self.images = images
        self.instance = specs[0].instance
        seen: dict[int, int] = {}
        #: per tile: instance, source vertex, slice of its value (or None), vector window, driver rows, synram index
        self.inputs: list[tuple[int, int, slice | None, int, slice | np.ndarray, int]] = []
        #: per tile: vector window, synram index, CADC columns, output vertices
        self.outputs: list[tuple[int, int, slice | np.ndarray, tuple[int, ...]]] = []
        for spec in specs:  # phases numbered per synram in tile order, as _Level.programs does
            phase = seen.get(spec.synram, 0)
            seen[spec.synram] = phase + 1
            k = self.synrams.index(spec.synram)
            part = _compose(slice(spec.source_start, spec.source_stop), slice(spec.start, spec.stop))
            self.inputs.append((spec.instance, spec.source, part, phase, _as_slice(np.asarray(spec.view.rows)), k))
            self.outputs.append((phase, k, _as_slice(np.asarray(spec.columns)), spec.outputs))
        self.n_phases = max(seen.values())
        self.layout = (hagen.ROWS, len(self.synrams))
        #: where every tile takes its inputs from one vertex: per phase and encoder entry (row, synram) the
        #: column of that vertex's value (-1: no input), so that the encoder reads the value in place
        self.columns: np.ndarray | None = None
        self.source_width = 0  # columns that the vertex's value must have
        if len({source for _, source, *_ in self.inputs}) == 1:
            columns = np.full((self.n_phases, hagen.ROWS, len(self.synrams)), -1, np.int64)
            for spec, (_, _, part, phase, rows, k) in zip(specs, self.inputs):
                start = 0 if part is None or part.start is None else part.start
                columns[phase, rows, k] = start + np.arange(np.asarray(spec.view.rows).size)
            self.columns = columns.reshape(self.n_phases, -1)
            self.columns.flags.writeable = False
            self.source_width = int(self.columns.max()) + 1
        #: (phase, synram index, first column, last column + 1) per tile when every tile's outputs are one
        #: span of columns of one width (see :func:`~bss2.exec._kernels.cut_samples`), else None
        self.spans: np.ndarray | None = None
        spans = [(phase, k, columns.start, columns.stop) for phase, k, columns, _ in self.outputs
                 if isinstance(columns, slice) and columns.step in (None, 1) and columns.start is not None]
        if len(spans) == len(self.outputs) and len({high - low for _, _, low, high in spans}) == 1:
            self.spans = np.array(spans, np.int64).reshape(-1, 4)
            self.spans.flags.writeable = False

    def gather(self, values: Mapping[int, Any]) -> tuple[np.ndarray, int, list[np.ndarray]] | None:
        """The encoder's input and the vectors per window and the tiles' inputs; None if the tiles' batches
        differ or are too large or empty. The input is the value of the tiles' one source vertex (see
        :attr:`columns`) or else the (phases * vectors, 128, synrams) uint16 layout gathered from several."""
        data = []
        vectors = -1
        for _, source, part, _, _, _ in self.inputs:
            value = values[source]
            if part is not None:
                value = value[..., part]
            if value.ndim != 2 or (vectors >= 0 and value.shape[0] != vectors):
                return None
            vectors = value.shape[0]
            data.append(value)
        if not 1 <= vectors * self.n_phases <= _LEAN_VECTORS:
            return None
        if self.columns is not None:
            whole = values[self.inputs[0][1]]
            if whole.shape[1] >= self.source_width and whole.dtype.kind in "iub":
                return whole, vectors, data
        x = np.zeros((self.n_phases * vectors, *self.layout), np.uint16)
        for (instance, _, _, phase, rows, k), value in zip(self.inputs, data):
            try:
                x[phase * vectors : (phase + 1) * vectors, rows, k] = value
            except Exception as error:
                raise ExecutionFailed(str(error), instance=instance, chip=self.chip, stage="build") from error
        return x, vectors, data

    def encode(self, x: np.ndarray, vectors: int, data: list[np.ndarray]) -> np.ndarray:
        """The input words of the program (:func:`bss2.hal.hagen.encode_gathered` from the source vertex's
        value, else :func:`bss2.hal.hagen.encode_vectors`); inputs outside 0..31 raise :class:`InputError`."""
        try:
            if x.ndim == 2:
                return hagen.encode_gathered(x, self.columns, self.synrams, self.num_sends, self.wait,
                                             hagen.DEFAULT_SETTLE_CYCLES)
            return hagen.encode_vectors(x, self.synrams, self.num_sends, self.wait, hagen.DEFAULT_SETTLE_CYCLES)
        except HalValueError:
            for (instance, *_), value in zip(self.inputs, data):
                if value.size and (int(value.min()) < 0 or int(value.max()) > hagen.MAX_ACTIVATION):
                    raise InputError(f"inputs of the tile of instance {instance} must lie in [0, {hagen.MAX_ACTIVATION}], "
                                     f"got [{int(value.min())}, {int(value.max())}]") from None
            raise

    def decode(self, responses: np.ndarray, cookie: int, vectors: int) -> dict[int, np.ndarray]:
        """Per output vertex: its tile's (vectors, columns) int8 results from the program's responses (the
        common case in one compiled pass, :func:`~bss2.exec._kernels.cut_samples`; else by :meth:`cut`)."""
        n = vectors * self.n_phases
        n_syn = len(self.synrams)
        if (self.spans is not None and responses.ndim == 1 and responses.dtype == np.uint64 and np.little_endian
                and responses.size == n * 33 * n_syn + 1 and int(responses[-1]) == _end_response(cookie)):
            out = cut_samples(responses[:-1].reshape(n, n_syn, 33), self.spans, vectors)
            if out is not None:
                return {d: out[t] for t, (_, _, _, descriptors) in enumerate(self.outputs) for d in descriptors}
        return self.cut(response_samples(responses, cookie, self.synrams, n), vectors)

    def cut(self, samples: np.ndarray, vectors: int) -> dict[int, np.ndarray]:
        """Per output vertex: its tile's (vectors, columns) int8 results, ``sample - 128``."""
        outputs: dict[int, np.ndarray] = {}
        for phase, k, columns, descriptors in self.outputs:
            rows = samples[phase * vectors : (phase + 1) * vectors] if self.n_phases > 1 else samples
            y = np.bitwise_xor(rows[:, k, columns], _TOP_BIT).view(np.int8)
            for descriptor in descriptors:
                outputs[descriptor] = y
        return outputs


_TOP_BIT = np.uint8(0x80)


class _LeanLevel:
    """A level prepared for the lean path: its programs (by chip and event parameters, as the
    level-by-level path groups tiles of equal batch), its row-block sums and its host steps with their
    input edges as ``(source, slice or None)``."""

    def __init__(self, level: _Level, images: Mapping[int, Mapping[int, np.ndarray]]) -> None:
        self.level = level
        groups: dict[tuple[int, int, int], list[_TileSpec]] = {}
        for spec in level.specs:
            groups.setdefault((spec.chip, int(spec.view.num_sends), int(spec.view.wait_between_events)), []).append(spec)
        self.programs = [_LeanProgram(chip, specs, images[chip]) for (chip, _, _), specs in groups.items()]
        #: the row-block sums: per Addition its tile outputs (once per edge) and the accumulator dtype
        self.sums: list[tuple[int, list[int], Any]] = []
        if level.sums is not None:
            sources: dict[int, list[int]] = {}
            for source, targets in level.sums.targets.items():
                for target in targets:
                    sources.setdefault(target, []).append(source)
            self.sums = [(target, sources[target], level.sums.dtypes[target]) for target in sorted(sources)]
        self.host = [(instance, d, step, [(source, None if whole else slice(lo, hi)) for source, whole, lo, hi in edges])
                     for instance, d, step, edges in level.host_steps]


def _compose(first: slice, second: slice) -> slice | None:
    """One slice doing what ``first`` and then ``second`` do (both with non-negative bounds, step 1), or
    None where neither cuts anything."""
    if first.start is None and first.stop is None:
        return None if second.start is None and second.stop is None else second
    if second.start is None and second.stop is None:
        return first
    offset = first.start or 0
    start = offset + (second.start or 0)
    stop = first.stop if second.stop is None else offset + second.stop
    if first.stop is not None and stop is not None:
        stop = min(stop, first.stop)
    return slice(start, stop)


def _as_slice(indices: np.ndarray) -> slice | np.ndarray:
    """``slice(start, stop)`` if ``indices`` is ``arange(start, stop)``, else the indices."""
    if indices.ndim == 1 and indices.size and bool((np.diff(indices) == 1).all()):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return indices


@attrs.define(eq=False)
class _TileSpec:
    """What a MAC view needs from the graph: its vertex, where its inputs come from, where results go,
    and (once placed) its chip, synram, physical columns and phase."""

    instance: int
    view: MACSynapseArrayView
    source: int  # the vertex whose output feeds the DataInput
    source_start: int | None
    source_stop: int | None
    start: int | None  # slice of the DataInput's output taken by the view
    stop: int | None
    outputs: tuple[int, ...]
    columns: np.ndarray
    synram: int = 0
    chip: int = 0
    phase: int = 0

    @property
    def width(self) -> int:
        return int(self.columns.size)

    def tile(self, values: Mapping[int, Any] | None) -> Tile:
        """The tile with its input data from ``values`` (None: no data, for the weight images)."""
        if values is None:
            data = np.zeros((0, self.view.rows.size), np.int64)
        else:
            data = values[self.source]
            if self.source_start is not None or self.source_stop is not None:
                data = data[..., self.source_start : self.source_stop]
            if self.start is not None or self.stop is not None:
                data = data[..., self.start : self.stop]
        view = self.view
        return Tile(self.instance, data, view.rows, self.columns, view.weights, int(view.num_sends), int(view.wait_between_events),
                    self.outputs, self.synram, self.chip, self.phase)


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
        specs.append(_TileSpec(instance.id, view, int(source_edge.source), source_edge.start, source_edge.stop, edge.start, edge.stop,
                               _downstream_outputs(graph, d), view.columns, int(view.synram), int(instance.chip)))
    return specs


def _host_steps(graph: Graph, instance: Any, produced: set[int]) -> list[tuple[int, int, Any, list[tuple[int, bool, Any, Any]]]]:
    """The transformations of ``instance`` in order, each with its input edges as (source, whole, start, stop)."""
    steps = []
    for d in graph.instance_vertices(instance):
        vertex = graph.vertex(d)
        if int(d) in produced or vertex.on_chip or not isinstance(vertex, Transformation):
            continue
        edges = [(int(e.source), e.start is None and e.stop is None, e.start, e.stop) for e in graph.inputs(d)]
        steps.append((instance.id, int(d), _Evaluator(vertex), edges))
    return steps


class _Evaluator:
    """``vertex.evaluate`` with the static part of common transformations precomputed (same results):
    an :class:`Unfold` without padding is one gather with a flat index, a :class:`ConvertingReLU` of
    int8 data one table look-up."""

    def __init__(self, vertex: Transformation) -> None:
        self.vertex = vertex
        self.evaluate = vertex.evaluate
        if type(vertex) is Unfold and bool((vertex.indices >= 0).all()):
            self._flat = np.ascontiguousarray(vertex.indices.reshape(-1))
            self._features = int(vertex.indices.shape[1])
            self.evaluate = self._unfold
        elif type(vertex) is ConvertingReLU:
            self._table = converting_relu(np.arange(256, dtype=np.uint8).view(np.int8), vertex.shift)
            self.evaluate = self._converting_relu

    def _unfold(self, x: Any) -> np.ndarray:
        return np.asarray(x)[:, self._flat].reshape(-1, self._features)

    def _converting_relu(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.int8:
            return self.vertex.evaluate(x)
        return self._table[x.view(np.uint8)]


def _downstream_outputs(graph: Graph, view: int) -> tuple[int, ...]:
    """DataOutput vertices reached from a MAC view through NeuronView -> CADC readout."""
    outputs = []
    columns = graph.vertex(view).columns

    def whole(edge: Any, what: str) -> None:
        # the chain carries the view's columns unchanged: a slice or a different column set along it would
        # need a selection that the MAC program does not make
        size = graph.vertex(edge.source).output_port().size
        if edge.start != 0 or edge.stop != size:
            raise UnsupportedGraphError(f"MAC view v{int(view)}: the edge v{edge.source} -> v{edge.target} takes outputs "
                                        f"[{edge.start}, {edge.stop}) of {size}; a {what} must take all of them")

    for neuron_edge in graph.users(view):
        neuron = graph.vertex(neuron_edge.target)
        if not isinstance(neuron, NeuronView):
            continue
        whole(neuron_edge, "NeuronView")
        if not np.array_equal(neuron.columns, columns):
            raise UnsupportedGraphError(f"NeuronView v{neuron_edge.target} must have the columns of MAC view v{int(view)}")
        for readout_edge in graph.users(neuron_edge.target):
            readout = graph.vertex(readout_edge.target)
            if not isinstance(readout, CADCMembraneReadoutView):
                continue
            whole(readout_edge, "CADC readout")
            if not np.array_equal(readout.columns, columns):
                raise UnsupportedGraphError(f"CADC readout v{readout_edge.target} must have the columns of MAC view v{int(view)}")
            for output_edge in graph.users(readout_edge.target):
                if isinstance(graph.vertex(output_edge.target), DataOutput):
                    whole(output_edge, "DataOutput")
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


def _sum_targets(graph: Graph, specs: Sequence[_TileSpec]) -> tuple[dict[int, list[int]], dict[int, Any]]:
    """Additions whose every input is a whole output of a tile of this level: tile output -> Additions
    (once per edge), and the accumulator dtype per Addition (see :class:`_Sums`)."""
    produced = {d: spec for spec in specs for d in spec.outputs}
    candidates: set[int] = set()
    for d in produced:
        for edge in graph.users(d):
            if isinstance(graph.vertex(edge.target), Addition):
                candidates.add(int(edge.target))
    targets: dict[int, list[int]] = {}
    dtypes: dict[int, Any] = {}
    for target in sorted(candidates):
        vertex = graph.vertex(target)
        edges = graph.inputs(target)
        if type(vertex) is not Addition or len(edges) != vertex.num_inputs:
            continue
        sources = [int(e.source) for e in edges]
        if not all(s in produced and _whole(e, produced[s].view.columns.size) for s, e in zip(sources, edges)):
            continue
        if any(produced[s].view.columns.size != vertex.size for s in sources):
            continue
        dtypes[target] = np.int16 if vertex.num_inputs <= 256 else np.int32
        for s in sources:
            targets.setdefault(s, []).append(target)
    return targets, dtypes


@attrs.frozen
class _SumPlan:
    targets: dict[int, list[int]]
    dtypes: dict[int, Any]


class _Sums:
    """Saturating sums of tile outputs, accumulated while the tiles' programs finish.

    An :class:`Addition` whose every input is a whole output of a tile of the current level (the row-block
    sum of a partitioned matmul) is computed here instead of after the level: each decoded tile output is
    added into an int16 accumulator (int32 beyond 256 inputs, so nothing wraps) as it is collected, and the
    sum is clipped once at the end - exactly ``saturating_add``. The host step then finds the value
    present and skips the vertex.
    """

    def __init__(self, plan: _SumPlan) -> None:
        self._plan = plan
        self._sums: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def add(self, outputs: Mapping[int, np.ndarray]) -> None:
        targets = self._plan.targets
        for d, y in outputs.items():
            for target in targets.get(d, ()):
                with self._lock:
                    total = self._sums.get(target)
                    if total is None:
                        self._sums[target] = y.astype(self._plan.dtypes[target])
                    else:
                        np.add(total, y, out=total)

    def results(self) -> dict[int, np.ndarray]:
        return {target: saturate_int8(total) for target, total in self._sums.items()}


def _whole(edge: Any, size: int) -> bool:
    """Whether ``edge`` passes its source's whole output of ``size`` entries."""
    return edge.start in (None, 0) and edge.stop in (None, size)
