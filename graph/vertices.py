"""The closed catalogue of signal-flow graph vertices.

Every vertex is a frozen attrs value object carrying its static configuration. It declares its ports
(:meth:`Vertex.input_port`, :meth:`Vertex.output_port`, :meth:`Vertex.arity`) and its pairwise rule
(:meth:`Vertex.check_input`: may the output of that vertex, sliced to ``[start, stop)``, feed input
``index``?). :class:`~bss2.graph.graph.GraphBuilder` applies these at every ``add``.

On-chip data path, spiking and hagen mode::

    ExternalInput -> DataInput -> ExternalSpikeInput -> CrossbarNode -> PADIBus -> SynapseDriver
      -> SynapseArrayView -> NeuronView -> NeuronEventOutputView -> CrossbarNode -> ExternalSpikeOutput
      -> DataOutput;  NeuronView -> CADCMembraneReadoutView / MADCReadoutView -> DataOutput;
    BackgroundSpikeSource -> CrossbarNode
    ExternalInput -> DataInput(UInt5) -> MACSynapseArrayView -> NeuronView -> CADCMembraneReadoutView
      -> DataOutput(Int8)

Host-side transformations (:class:`Transformation`) take and give ``Data*`` memory types and have
reference semantics in :meth:`Transformation.evaluate` (pure numpy, batch-major arrays).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import attrs
import numpy as np

from bss2.hal.coordinates import (
    AtomicNeuronOnDLS,
    BackgroundSpikeSourceOnDLS,
    Coordinate,
    CrossbarNodeOnDLS,
    NeuronEventOutputOnDLS,
    PADIBusOnDLS,
    SPL1Address,
    SynapseDriverOnDLS,
)
from bss2.hal.wire import MAX_SPIKE_DELAY

from .errors import GraphTypeError, GraphValueError
from .ports import FROM_MEMORY, TO_MEMORY, ConnectionType, Port

CT = ConnectionType
ROW_MODES = ("disabled", "excitatory", "inhibitory", "both")
MADC_SIGNALS = ("membrane", "excitatory_input", "inhibitory_input", "adaptation")

#: name -> vertex class, for deserialisation; filled by :func:`_register`
VERTEX_TYPES: dict[str, type[Vertex]] = {}


# ------------------------------------------------------------------------------------------ helpers


def _coordinate(kind: type[Coordinate]) -> Any:
    """attrs converter: accept a coordinate of ``kind`` or its integer enum."""

    def convert(value: Any) -> Coordinate:
        if isinstance(value, kind):
            return value
        if isinstance(value, Coordinate):
            raise GraphTypeError(f"expected a {kind.__name__}, got {type(value).__name__}")
        return kind.from_enum(int(value))

    return convert


def _connection_type(value: object) -> ConnectionType:
    """``value`` as a :class:`ConnectionType` (a member or its name), else :class:`GraphTypeError`."""
    try:
        return ConnectionType(value)
    except ValueError:
        names = ", ".join(member.value for member in ConnectionType)
        raise GraphTypeError(f"unknown connection type {value!r}; expected one of: {names}") from None


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy, anything with ``__index__``) and not a bool."""
    return not isinstance(value, (bool, np.bool_)) and hasattr(value, "__index__")


def frozen(array: np.ndarray) -> bool:
    """Whether nobody can change ``array``'s content: it and every array it views are read-only, down to an
    owner of its memory (or immutable ``bytes``)."""
    item: Any = array
    while isinstance(item, np.ndarray):
        if item.flags.writeable:
            return False
        item = item.base
    return item is None or isinstance(item, bytes)


def _readonly_array(dtype: Any, ndim: int) -> Any:
    """attrs converter: an ndarray of ``dtype`` that nobody can write through (no copy if read-only)."""

    def convert(value: Any) -> np.ndarray:
        try:
            array = np.asarray(value)
        except ValueError as error:  # ragged nested sequences
            raise GraphValueError(f"expected a rectangular integer array: {error}") from None
        if array.dtype != dtype:
            if array.size and array.dtype.kind == "f" and np.all(np.floor(array) == array):
                pass  # integral floats (e.g. from np.zeros) are accepted
            elif array.size and array.dtype.kind not in "iub":
                raise GraphTypeError(f"expected an integer array, got dtype {array.dtype}")
            if np.dtype(dtype) == np.bool_:
                if array.size and (array.min() < 0 or array.max() > 1):
                    raise GraphValueError(f"a flag array must hold 0/1 values, got {array.min()}..{array.max()}")
                info = None
            else:
                info = np.iinfo(dtype)
            # check before casting: a narrowing cast would wrap silently
            if info is not None and array.size and (array.min() < info.min or array.max() > info.max):
                raise GraphValueError(f"array values {array.min()}..{array.max()} do not fit {np.dtype(dtype)} "
                                      f"[{info.min}, {info.max}]")
            array = array.astype(dtype)
        if array.ndim != ndim:
            raise GraphValueError(f"expected a {ndim}-d array, got shape {array.shape}")
        if not frozen(array):
            # the caller could still write through its array (or the array it views): keep a private copy.
            # Arrays that nobody can write are kept by reference (tiles share one matrix that way).
            array = array.copy()
            array.flags.writeable = False
        return array

    return convert


def _array_field(dtype: Any, ndim: int = 1) -> Any:
    return attrs.field(converter=_readonly_array(dtype, ndim), eq=attrs.cmp_using(eq=np.array_equal), hash=False)


def _optional_equal(a: Any, b: Any) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and bool(np.array_equal(a, b)))


def _optional_array_field(dtype: Any, ndim: int) -> Any:
    return attrs.field(default=None, converter=attrs.converters.optional(_readonly_array(dtype, ndim)),
                       eq=attrs.cmp_using(eq=_optional_equal), hash=False)


def _check_range(name: str, value: Any, low: int, high: int, owner: str) -> None:
    if isinstance(value, np.ndarray):
        if value.size and (value.min() < low or value.max() > high):
            bad = value[(value < low) | (value > high)].flat[0]
            raise GraphValueError(f"{owner}.{name} contains {bad}, out of range [{low}, {high}]")
    elif not hasattr(value, "__index__"):  # a float, string, None or array-like: never truncated silently
        raise GraphTypeError(f"{owner}.{name} must be an integer in [{low}, {high}], got {value!r}")
    elif not low <= value <= high:
        raise GraphValueError(f"{owner}.{name} = {value} is out of range [{low}, {high}]")


def _unique_sorted(name: str, value: np.ndarray, owner: str) -> None:
    if value.size > 1 and np.any(np.diff(value) <= 0):
        raise GraphValueError(f"{owner}.{name} must be strictly increasing, got {value.tolist()[:8]}...")


@functools.lru_cache(maxsize=4096)
def _port(kind: ConnectionType, size: int) -> Port:
    """Ports are immutable values: share one instance per (type, size) (cheap in hot build loops)."""
    return Port(kind, size)


def _register(cls: type[Vertex]) -> type[Vertex]:
    VERTEX_TYPES[cls.__name__] = cls
    return cls


# -------------------------------------------------------------------------------------------- base


class Vertex:
    """Interface of all vertices. Subclasses are frozen attrs classes.

    A vertex has one output port and ``arity()`` input ports; input ``i`` has the port
    ``input_port(i)``. ``check_input`` returns None when an edge is acceptable, otherwise the reason.
    """

    __slots__ = ()
    #: True for host-side transformations (run by the executor on the host, not on the chip)
    is_transformation: ClassVar[bool] = False
    #: True when the vertex lives on the chip (contributes configuration to a playback program)
    on_chip: ClassVar[bool] = True

    def arity(self) -> tuple[int, int]:
        """(minimum, maximum) number of inputs."""
        return (0, 0)

    def input_port(self, index: int) -> Port:
        """The port of input ``index`` (0-based, ``index < arity()[1]``)."""
        raise GraphValueError(f"{type(self).__name__} has no input {index}")

    def output_port(self) -> Port:
        """The single output port."""
        raise NotImplementedError

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        """The vertex-pair rule: None if ``source``'s output ``[start, stop)`` may feed input ``index``."""
        return None

    @classmethod
    def _trusted(cls, **fields: Any) -> Any:
        """Construct without converters or validators (for ops that validated the whole operand once).

        Fields must already have their final types (read-only arrays, coordinates, tuples).
        """
        instance = object.__new__(cls)
        for name, value in fields.items():
            object.__setattr__(instance, name, value)
        return instance

    def describe(self) -> str:
        """A one-line summary of the configuration (arrays abbreviated), for tables and dot."""
        parts = []
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                if value.ndim == 1 and value.dtype.kind in "iu" and value.size and \
                        value.size == value[-1] - value[0] + 1 and \
                        np.all(np.diff(value) == 1):
                    text = f"{value[0]}..{value[-1]}"
                else:
                    text = f"<{value.dtype} {'x'.join(map(str, value.shape))}>"
            elif isinstance(value, Coordinate):
                text = repr(value)
            elif value is None:
                continue
            else:
                text = str(value.value if hasattr(value, "value") and isinstance(value, ConnectionType) else value)
            parts.append(f"{field.name}={text}")
        return ", ".join(parts)


def _one(port: Port, self: Vertex, index: int) -> Port:
    if index != 0:
        raise GraphValueError(f"{type(self).__name__} has one input, not input {index}")
    return port


# ---------------------------------------------------------------------------------- host <-> chip


@_register
@attrs.frozen(slots=True)
class ExternalInput(Vertex):
    """Host data fed into the graph by the caller of the executor (a graph input).

    ``type`` is a memory type; ``size`` the number of entries per batch entry.
    """

    type: ConnectionType = attrs.field(converter=_connection_type)
    size: int
    name: str = ""
    on_chip: ClassVar[bool] = False

    def __attrs_post_init__(self) -> None:
        if not self.type.is_memory:
            raise GraphValueError(f"ExternalInput.type = {self.type.value} is not a Data* memory type")
        _check_range("size", self.size, 1, 2**31 - 1, "ExternalInput")

    def output_port(self) -> Port:
        return _port(self.type, self.size)


@_register
@attrs.frozen(slots=True)
class DataInput(Vertex):
    """Host memory -> chip: ``DataUInt5 -> UInt5`` (hagen activations) or ``DataTimedSpikes -> TimedSpikes``."""

    output_type: ConnectionType = attrs.field(converter=_connection_type)
    size: int

    def __attrs_post_init__(self) -> None:
        if self.output_type not in FROM_MEMORY.values():
            raise GraphValueError(
                f"DataInput.output_type = {self.output_type.value} is not one of "
                f"{sorted(t.value for t in FROM_MEMORY.values())}"
            )
        _check_range("size", self.size, 1, 2**31 - 1, "DataInput")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        memory = next(k for k, v in FROM_MEMORY.items() if v is self.output_type)
        return _one(_port(memory, self.size), self, index)

    def output_port(self) -> Port:
        return _port(self.output_type, self.size)


@_register
@attrs.frozen(slots=True)
class DataOutput(Vertex):
    """Chip -> host memory: ``Int8 -> DataInt8``, ``TimedSpikesFromChip -> DataTimedSpikesFromChip``, ..."""

    input_type: ConnectionType = attrs.field(converter=_connection_type)
    size: int

    def __attrs_post_init__(self) -> None:
        if self.input_type not in TO_MEMORY:
            raise GraphValueError(
                f"DataOutput.input_type = {self.input_type.value} is not one of {sorted(t.value for t in TO_MEMORY)}"
            )
        _check_range("size", self.size, 1, 2**31 - 1, "DataOutput")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_port(self.input_type, self.size), self, index)

    def output_port(self) -> Port:
        return _port(TO_MEMORY[self.input_type], self.size)


# ------------------------------------------------------------------------------------ event routing


@_register
@attrs.frozen(slots=True)
class ExternalSpikeInput(Vertex):
    """Events injected by the FPGA on channel ``channel`` (crossbar input 8 + channel)."""

    channel: SPL1Address = attrs.field(converter=_coordinate(SPL1Address))

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_port(CT.TimedSpikes, 1), self, index)

    def output_port(self) -> Port:
        return _port(CT.CrossbarLabel, 1)


@_register
@attrs.frozen(slots=True)
class ExternalSpikeOutput(Vertex):
    """Events leaving the crossbar towards the FPGA (outputs 8..11), recorded with timestamps."""

    def arity(self) -> tuple[int, int]:
        return (1, 48)

    def input_port(self, index: int) -> Port:
        return _port(CT.CrossbarLabel, 1)

    def output_port(self) -> Port:
        return _port(CT.TimedSpikesFromChip, 1)

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        if not isinstance(source, CrossbarNode) or int(source.coordinate.output) < 8:
            return "ExternalSpikeOutput takes input only from a CrossbarNode with output 8..11"
        return None


@_register
@attrs.frozen(slots=True)
class BackgroundSpikeSource(Vertex):
    """An on-chip background event generator (crossbar input 12 + source).

    ``period`` in FPGA cycles (8 ns), 1..65535; in Poisson mode (``enable_random``) each period emits
    with probability (rate + 1) / 256. ``label`` is the 16-bit event label; bits set in ``mask`` (0..255)
    are randomised per event.
    """

    coordinate: BackgroundSpikeSourceOnDLS = attrs.field(converter=_coordinate(BackgroundSpikeSourceOnDLS))
    period: int = 1000
    rate: int = 255
    seed: int = 1
    enable_random: bool = False
    label: int = 0
    mask: int = 0

    def __attrs_post_init__(self) -> None:
        _check_range("period", self.period, 1, 65535, "BackgroundSpikeSource")
        _check_range("rate", self.rate, 0, 255, "BackgroundSpikeSource")
        _check_range("seed", self.seed, 0, 2**32 - 1, "BackgroundSpikeSource")
        _check_range("label", self.label, 0, 65535, "BackgroundSpikeSource")
        _check_range("mask", self.mask, 0, 255, "BackgroundSpikeSource")

    def output_port(self) -> Port:
        return _port(CT.CrossbarLabel, 1)


@_register
@attrs.frozen(slots=True)
class CrossbarNode(Vertex):
    """Crossbar node: an event with label L passes if ``enable`` and ``(L & mask) == target`` (16 bit)."""

    coordinate: CrossbarNodeOnDLS = attrs.field(converter=_coordinate(CrossbarNodeOnDLS))
    mask: int = 0
    target: int = 0
    enable: bool = True

    def __attrs_post_init__(self) -> None:
        _check_range("mask", self.mask, 0, 65535, "CrossbarNode")
        _check_range("target", self.target, 0, 65535, "CrossbarNode")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_port(CT.CrossbarLabel, 1), self, index)

    def output_port(self) -> Port:
        return _port(CT.CrossbarLabel, 1)

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        node_input = int(self.coordinate.input)
        if isinstance(source, NeuronEventOutputView):
            expected = int(source.coordinate)
        elif isinstance(source, ExternalSpikeInput):
            expected = 8 + int(source.channel)
        elif isinstance(source, BackgroundSpikeSource):
            expected = 12 + int(source.coordinate)
        else:
            return "CrossbarNode takes input from NeuronEventOutputView, ExternalSpikeInput or BackgroundSpikeSource"
        if expected != node_input:
            return f"CrossbarNode input = {node_input} but {type(source).__name__} feeds crossbar input {expected}"
        return None


@_register
@attrs.frozen(slots=True)
class PADIBus(Vertex):
    """A PADI bus: carries the events of the crossbar nodes of its output to its 32 synapse drivers."""

    coordinate: PADIBusOnDLS = attrs.field(converter=_coordinate(PADIBusOnDLS))

    def arity(self) -> tuple[int, int]:
        return (0, 20)

    def input_port(self, index: int) -> Port:
        return _port(CT.CrossbarLabel, 1)

    def output_port(self) -> Port:
        return _port(CT.SynapseDriverInputLabel, 1)

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        if not isinstance(source, CrossbarNode):
            return "PADIBus takes input only from a CrossbarNode"
        if int(source.coordinate.output) != int(self.coordinate):
            return (f"CrossbarNode output = {int(source.coordinate.output)} does not feed PADI bus "
                    f"{int(self.coordinate)} (crossbar output {int(self.coordinate)})")
        return None


@_register
@attrs.frozen(slots=True)
class SynapseDriver(Vertex):
    """Synapse driver d: drives rows 2d, 2d+1 of its synram, listens on PADI bus d % 4.

    Accepts an event with label L if ``(L[10:6] & row_select_mask) == (d // 4 & row_select_mask)``.
    ``row_modes``: (top row, bottom row) each one of ``disabled``, ``excitatory``, ``inhibitory``, ``both``.
    """

    coordinate: SynapseDriverOnDLS = attrs.field(converter=_coordinate(SynapseDriverOnDLS))
    row_modes: tuple[str, str] = attrs.field(default=("excitatory", "excitatory"), converter=tuple)
    row_select_mask: int = 0

    def __attrs_post_init__(self) -> None:
        if len(self.row_modes) != 2 or any(mode not in ROW_MODES for mode in self.row_modes):
            raise GraphValueError(f"SynapseDriver.row_modes = {self.row_modes} must be two of {ROW_MODES}")
        _check_range("row_select_mask", self.row_select_mask, 0, 31, "SynapseDriver")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_port(CT.SynapseDriverInputLabel, 1), self, index)

    def output_port(self) -> Port:
        return _port(CT.SynapseInputLabel, 2)

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        if not isinstance(source, PADIBus):
            return "SynapseDriver takes input only from a PADIBus"
        if source.coordinate != self.coordinate.to_padi_bus():
            return f"SynapseDriver {self.coordinate!r} listens on {self.coordinate.to_padi_bus()!r}, not {source.coordinate!r}"
        return None


@_register
@attrs.frozen(slots=True)
class SynapseArrayView(Vertex):
    """Spiking-mode view of synapse ``rows`` x ``columns`` of ``synram`` (rows 0..255, columns 0..255).

    ``weights`` (0..63) and ``labels`` (6-bit synapse labels, 0..63) have shape (rows, columns). Inputs are
    the synapse drivers owning the rows (each feeds its two rows); the output is the synaptic input
    of the columns.
    """

    synram: int
    rows: np.ndarray = _array_field(np.int64)
    columns: np.ndarray = _array_field(np.int64)
    weights: np.ndarray = _array_field(np.uint8, 2)
    labels: np.ndarray = _array_field(np.uint8, 2)

    def __attrs_post_init__(self) -> None:
        owner = "SynapseArrayView"
        _check_range("synram", self.synram, 0, 1, owner)
        _check_range("rows", self.rows, 0, 255, owner)
        _check_range("columns", self.columns, 0, 255, owner)
        _unique_sorted("rows", self.rows, owner)
        _unique_sorted("columns", self.columns, owner)
        shape = (self.rows.size, self.columns.size)
        if self.rows.size == 0 or self.columns.size == 0:
            raise GraphValueError(f"{owner} needs at least one row and one column")
        for name in ("weights", "labels"):
            if getattr(self, name).shape != shape:
                raise GraphValueError(f"{owner}.{name} has shape {getattr(self, name).shape}, expected {shape}")
            _check_range(name, getattr(self, name), 0, 63, owner)

    def arity(self) -> tuple[int, int]:
        return (0, self.rows.size)

    def input_port(self, index: int) -> Port:
        return _port(CT.SynapseInputLabel, 2)

    def output_port(self) -> Port:
        return _port(CT.SynapticInput, int(self.columns.size))

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        if not isinstance(source, SynapseDriver):
            return "SynapseArrayView takes input only from a SynapseDriver"
        if int(source.coordinate.block) != self.synram:
            return f"SynapseDriver {source.coordinate!r} drives synram {int(source.coordinate.block)}, not {self.synram}"
        driver = int(source.coordinate.driver)
        if not np.isin([2 * driver, 2 * driver + 1], self.rows).all():
            return f"rows {2 * driver}, {2 * driver + 1} of SynapseDriver {driver} are not both in the view's rows"
        return None


@_register
@attrs.frozen(slots=True)
class MACSynapseArrayView(Vertex):
    """Hagen-mode (matrix-multiply) tile of ``synram``: signed weights, one synapse driver per input.

    ``rows``: logical input rows = synapse drivers 0..127 (each uses its two synapse rows, one excitatory
    and one inhibitory, for the sign); ``columns``: 0..255; ``weights``: int8 -63..63, shape (rows, columns).
    Each input entry is sent ``num_sends`` times (1..255), ``wait_between_events`` FPGA cycles apart (8 ns,
    1..63: the delay field of a SPIKES word).
    """

    synram: int
    rows: np.ndarray = _array_field(np.int64)
    columns: np.ndarray = _array_field(np.int64)
    weights: np.ndarray = _array_field(np.int8, 2)
    num_sends: int = 1
    wait_between_events: int = 5

    def __attrs_post_init__(self) -> None:
        owner = "MACSynapseArrayView"
        _check_range("synram", self.synram, 0, 1, owner)
        _check_range("rows", self.rows, 0, 127, owner)
        _check_range("columns", self.columns, 0, 255, owner)
        _unique_sorted("rows", self.rows, owner)
        _unique_sorted("columns", self.columns, owner)
        if self.rows.size == 0 or self.columns.size == 0:
            raise GraphValueError(f"{owner} needs at least one row and one column")
        shape = (self.rows.size, self.columns.size)
        if self.weights.shape != shape:
            raise GraphValueError(f"{owner}.weights has shape {self.weights.shape}, expected {shape}")
        _check_range("weights", self.weights, -63, 63, owner)
        _check_range("num_sends", self.num_sends, 1, 255, owner)
        _check_range("wait_between_events", self.wait_between_events, 1, MAX_SPIKE_DELAY, owner)

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_port(CT.UInt5, int(self.rows.size)), self, index)

    def output_port(self) -> Port:
        return _port(CT.SynapticInput, int(self.columns.size))

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        if not isinstance(source, DataInput):
            return "MACSynapseArrayView takes input only from a DataInput (UInt5)"
        return None


# ------------------------------------------------------------------------------------------- neurons


@_register
@attrs.frozen(slots=True)
class NeuronView(Vertex):
    """The neurons of ``columns`` (0..255, increasing) in neuron row ``row`` (= hemisphere = synram).

    Spiking configuration per neuron (all optional, None = hagen-mode defaults): ``capmem_names`` names
    CapMem rows of the register map, ``capmem_values`` (len(names), len(columns)) their values 0..1022;
    ``address_out`` (0..255) is label[7:0] of the neuron's spikes; ``enable_spike_out`` (bool) whether it
    sends spikes; ``refractory_time`` in FPGA cycles (0..255).
    """

    row: int
    columns: np.ndarray = _array_field(np.int64)
    capmem_names: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    capmem_values: np.ndarray | None = _optional_array_field(np.int64, 2)
    address_out: np.ndarray | None = _optional_array_field(np.int64, 1)
    enable_spike_out: np.ndarray | None = _optional_array_field(np.bool_, 1)
    refractory_time: np.ndarray | None = _optional_array_field(np.int64, 1)

    def __attrs_post_init__(self) -> None:
        owner = "NeuronView"
        _check_range("row", self.row, 0, 1, owner)
        _check_range("columns", self.columns, 0, 255, owner)
        _unique_sorted("columns", self.columns, owner)
        if self.columns.size == 0:
            raise GraphValueError(f"{owner} needs at least one column")
        n = self.columns.size
        if self.capmem_values is not None and self.capmem_values.shape != (len(self.capmem_names), n):
            raise GraphValueError(f"{owner}.capmem_values has shape {self.capmem_values.shape}, "
                                  f"expected {(len(self.capmem_names), n)}")
        for name, high in (("capmem_values", 1022), ("address_out", 255), ("enable_spike_out", 1),
                           ("refractory_time", 255)):
            value = getattr(self, name)
            if value is None:
                continue
            if name != "capmem_values" and value.shape != (n,):
                raise GraphValueError(f"{owner}.{name} has shape {value.shape}, expected {(n,)}")
            _check_range(name, value, 0, high, owner)

    def arity(self) -> tuple[int, int]:
        return (0, 512)

    def input_port(self, index: int) -> Port:
        return _port(CT.SynapticInput, int(self.columns.size))

    def output_port(self) -> Port:
        return _port(CT.MembraneVoltage, int(self.columns.size))

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        if not isinstance(source, (SynapseArrayView, MACSynapseArrayView)):
            return "NeuronView takes input only from a SynapseArrayView or MACSynapseArrayView"
        if source.synram != self.row:
            return f"synapse view on synram {source.synram} cannot feed neuron row {self.row}"
        if source.columns is not self.columns and not np.array_equal(source.columns[start:stop], self.columns):
            return "the synapse view's columns do not match the neuron view's columns"
        return None


def _neuron_slice_rule(owner: str, row: int, source: Vertex, start: int, stop: int) -> str | None:
    if not isinstance(source, NeuronView):
        return f"{owner} takes input only from a NeuronView"
    if source.row != row:
        return f"{owner} on row/synram {row} cannot read neuron row {source.row}"
    return None


@_register
@attrs.frozen(slots=True)
class NeuronEventOutputView(Vertex):
    """Neuron event output ``coordinate`` (hemisphere * 4 + column // 64): spikes of its neurons.

    Its inputs are slices of neuron views covering only columns of this event output.
    """

    coordinate: NeuronEventOutputOnDLS = attrs.field(converter=_coordinate(NeuronEventOutputOnDLS))

    def arity(self) -> tuple[int, int]:
        return (1, 64)

    def input_port(self, index: int) -> Port:
        return _port(CT.MembraneVoltage, 0)  # any size: the pair rule checks the columns

    def output_port(self) -> Port:
        return _port(CT.CrossbarLabel, 1)

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        eo = int(self.coordinate)
        reason = _neuron_slice_rule("NeuronEventOutputView", eo // 4, source, start, stop)
        if reason:
            return reason
        blocks = np.asarray(source.columns[start:stop]) // 64  # type: ignore[attr-defined]
        if np.any(blocks != eo % 4):
            return f"neuron columns outside 64*{eo % 4}..64*{eo % 4}+63 do not belong to event output {eo}"
        return None


@_register
@attrs.frozen(slots=True)
class CADCMembraneReadoutView(Vertex):
    """CADC readout of ``columns`` of ``synram``.

    ``mode="hagen"``: one conversion after integration, result Int8 relative to the reset baseline.
    ``mode="periodic"``: samples (0..255) every ``period`` FPGA cycles during the run (TimedCADCSamples).
    """

    synram: int
    columns: np.ndarray = _array_field(np.int64)
    mode: str = "hagen"
    period: int = 250

    def __attrs_post_init__(self) -> None:
        owner = "CADCMembraneReadoutView"
        _check_range("synram", self.synram, 0, 1, owner)
        _check_range("columns", self.columns, 0, 255, owner)
        _unique_sorted("columns", self.columns, owner)
        if self.columns.size == 0:
            raise GraphValueError(f"{owner} needs at least one column")
        if self.mode not in ("hagen", "periodic"):
            raise GraphValueError(f"{owner}.mode = {self.mode!r} is not one of ('hagen', 'periodic')")
        _check_range("period", self.period, 1, 2**31 - 1, owner)

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_port(CT.MembraneVoltage, int(self.columns.size)), self, index)

    def output_port(self) -> Port:
        kind = CT.Int8 if self.mode == "hagen" else CT.TimedCADCSamples
        return _port(kind, int(self.columns.size))

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        reason = _neuron_slice_rule("CADCMembraneReadoutView", self.synram, source, start, stop)
        if reason:
            return reason
        columns = source.columns  # type: ignore[attr-defined]
        if columns is not self.columns and not np.array_equal(columns[start:stop], self.columns):
            return "the readout's columns do not match the neuron view's (sliced) columns"
        return None


@_register
@attrs.frozen(slots=True)
class MADCReadoutView(Vertex):
    """MADC recording of one neuron's ``signal`` (membrane, excitatory_input, ...); 10-bit samples.

    ``sample_period`` in FPGA cycles (1..65535). Its input is the one-column slice of a neuron view.
    """

    neuron: AtomicNeuronOnDLS = attrs.field(converter=_coordinate(AtomicNeuronOnDLS))
    signal: str = "membrane"
    sample_period: int = 4

    def __attrs_post_init__(self) -> None:
        if self.signal not in MADC_SIGNALS:
            raise GraphValueError(f"MADCReadoutView.signal = {self.signal!r} is not one of {MADC_SIGNALS}")
        _check_range("sample_period", self.sample_period, 1, 65535, "MADCReadoutView")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_port(CT.MembraneVoltage, 1), self, index)

    def output_port(self) -> Port:
        return _port(CT.TimedMADCSamples, 1)

    def check_input(self, index: int, source: Vertex, start: int, stop: int) -> str | None:
        reason = _neuron_slice_rule("MADCReadoutView", int(self.neuron.row), source, start, stop)
        if reason:
            return reason
        column = int(source.columns[start])  # type: ignore[attr-defined]
        if column != int(self.neuron.column):
            return f"the sliced neuron column {column} is not the recorded neuron's column {int(self.neuron.column)}"
        return None


# ---------------------------------------------------------------------------------- transformations


class Transformation(Vertex):
    """A host-side computation on memory types, with numpy reference semantics.

    ``evaluate(*inputs)`` takes one batch-major array per input (shape (batch, size)) and returns the
    output array.
    """

    __slots__ = ()
    is_transformation: ClassVar[bool] = True
    on_chip: ClassVar[bool] = False

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def saturating_add(*inputs: np.ndarray) -> np.ndarray:
    """Sum of int8 arrays in int32, then clipped to [-128, 127] (the sum saturates once, at the end)."""
    total = np.zeros(np.broadcast_shapes(*(np.shape(x) for x in inputs)), dtype=np.int32)
    for x in inputs:
        total += np.asarray(x, dtype=np.int32)
    return np.clip(total, -128, 127).astype(np.int8)


def saturating_subtract(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b in int32, clipped to [-128, 127]."""
    return np.clip(np.asarray(a, np.int32) - np.asarray(b, np.int32), -128, 127).astype(np.int8)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), keeping the dtype."""
    return np.maximum(x, 0).astype(np.asarray(x).dtype)


def converting_relu(x: np.ndarray, shift: int = 2) -> np.ndarray:
    """clip(relu(x) >> shift, 0, 31) as uint8: an int8 layer output turned into the next layer's 5-bit input."""
    return np.clip(np.maximum(np.asarray(x, np.int32), 0) >> shift, 0, 31).astype(np.uint8)


def argmax(x: np.ndarray) -> np.ndarray:
    """Index of the maximum along the last axis (first on ties), shape (..., 1), int32."""
    return np.argmax(x, axis=-1).astype(np.int32)[..., None]


def concatenate(*inputs: np.ndarray) -> np.ndarray:
    """Inputs side by side along the last axis."""
    return np.concatenate(inputs, axis=-1)


def _int8_port(size: int) -> Port:
    return _port(CT.DataInt8, size)


@_register
@attrs.frozen(slots=True)
class Addition(Transformation):
    """Saturating int8 sum of ``num_inputs`` (>= 1) vectors of ``size`` entries (see :func:`saturating_add`)."""

    size: int
    num_inputs: int = 2

    def __attrs_post_init__(self) -> None:
        _check_range("size", self.size, 1, 2**31 - 1, "Addition")
        _check_range("num_inputs", self.num_inputs, 1, 2**16, "Addition")

    def arity(self) -> tuple[int, int]:
        return (self.num_inputs, self.num_inputs)

    def input_port(self, index: int) -> Port:
        return _int8_port(self.size)

    def output_port(self) -> Port:
        return _int8_port(self.size)

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        return saturating_add(*inputs)


@_register
@attrs.frozen(slots=True)
class Subtraction(Transformation):
    """Saturating int8 difference input 0 - input 1."""

    size: int

    def __attrs_post_init__(self) -> None:
        _check_range("size", self.size, 1, 2**31 - 1, "Subtraction")

    def arity(self) -> tuple[int, int]:
        return (2, 2)

    def input_port(self, index: int) -> Port:
        return _int8_port(self.size)

    def output_port(self) -> Port:
        return _int8_port(self.size)

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        return saturating_subtract(*inputs)


@_register
@attrs.frozen(slots=True)
class ReLU(Transformation):
    """Elementwise max(x, 0) on int8."""

    size: int

    def __attrs_post_init__(self) -> None:
        _check_range("size", self.size, 1, 2**31 - 1, "ReLU")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_int8_port(self.size), self, index)

    def output_port(self) -> Port:
        return _int8_port(self.size)

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        return relu(inputs[0])


@_register
@attrs.frozen(slots=True)
class ConvertingReLU(Transformation):
    """int8 -> 5-bit activations: clip(relu(x) >> shift, 0, 31); ``shift`` 0..7."""

    size: int
    shift: int = 2

    def __attrs_post_init__(self) -> None:
        _check_range("size", self.size, 1, 2**31 - 1, "ConvertingReLU")
        _check_range("shift", self.shift, 0, 7, "ConvertingReLU")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_int8_port(self.size), self, index)

    def output_port(self) -> Port:
        return _port(CT.DataUInt5, self.size)

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        return converting_relu(inputs[0], self.shift)


@_register
@attrs.frozen(slots=True)
class ArgMax(Transformation):
    """Index (int32) of the largest of ``size`` int8 entries."""

    size: int

    def __attrs_post_init__(self) -> None:
        _check_range("size", self.size, 1, 2**31 - 1, "ArgMax")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_int8_port(self.size), self, index)

    def output_port(self) -> Port:
        return _port(CT.DataInt32, 1)

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        return argmax(inputs[0])


@_register
@attrs.frozen(slots=True)
class Concatenation(Transformation):
    """Vectors of memory ``type`` and ``sizes`` side by side."""

    type: ConnectionType = attrs.field(converter=_connection_type)
    sizes: tuple[int, ...] = attrs.field(converter=lambda v: tuple(int(x) for x in v))

    def __attrs_post_init__(self) -> None:
        if not self.type.is_memory:
            raise GraphValueError(f"Concatenation.type = {self.type.value} is not a Data* memory type")
        if not self.sizes:
            raise GraphValueError("Concatenation.sizes must not be empty")
        for size in self.sizes:
            _check_range("sizes", size, 1, 2**31 - 1, "Concatenation")

    def arity(self) -> tuple[int, int]:
        return (len(self.sizes), len(self.sizes))

    def input_port(self, index: int) -> Port:
        return _port(self.type, self.sizes[index])

    def output_port(self) -> Port:
        return _port(self.type, sum(self.sizes))

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        return concatenate(*inputs)


@_register
@attrs.frozen(slots=True)
class Unfold(Transformation):
    """Per-sample gather into several rows: the input unfolding of a convolution.

    Input: (batch, ``size``) of memory ``type``; ``indices`` (positions, features) index into one sample
    (``-1`` = zero padding). Output: (batch * positions, features), row ``b * positions + p`` holding
    ``sample_b[indices[p]]`` — every output position becomes one row of the next matmul's batch.
    """

    type: ConnectionType = attrs.field(converter=_connection_type)
    size: int
    indices: np.ndarray = _array_field(np.int64, 2)

    def __attrs_post_init__(self) -> None:
        if not self.type.is_memory:
            raise GraphValueError(f"Unfold.type = {self.type.value} is not a Data* memory type")
        _check_range("size", self.size, 1, 2**31 - 1, "Unfold")
        if self.indices.size == 0:
            raise GraphValueError("Unfold.indices must not be empty")
        _check_range("indices", self.indices, -1, self.size - 1, "Unfold")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_port(self.type, self.size), self, index)

    def output_port(self) -> Port:
        return _port(self.type, int(self.indices.shape[1]))

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        x = np.asarray(inputs[0])
        padded = np.concatenate([x, np.zeros((x.shape[0], 1), dtype=x.dtype)], axis=1)
        gathered = padded[:, np.where(self.indices < 0, x.shape[1], self.indices)]
        return gathered.reshape(-1, self.indices.shape[1])


def channel_major(channels: int, positions: int) -> np.ndarray:
    """The :class:`Fold` index map flattening (positions, channels) rows as (channels, positions)."""
    c, p = np.meshgrid(np.arange(channels), np.arange(positions), indexing="ij")
    return (p * channels + c).reshape(-1)


@_register
@attrs.frozen(slots=True)
class Fold(Transformation):
    """Rows back into samples: the regrouping after an unfolded matmul.

    Input: (batch * ``positions``, ``channels``) of memory ``type``. The ``positions`` rows of one sample
    form a (positions, channels) block; the output row of the sample is ``block.flat[indices]`` (shape
    (batch, len(indices))). :func:`channel_major` gives the map of a plain convolution, whose output
    flattens as (channels, positions).
    """

    type: ConnectionType = attrs.field(converter=_connection_type)
    channels: int
    positions: int
    indices: np.ndarray = _array_field(np.int64, 1)

    def __attrs_post_init__(self) -> None:
        if not self.type.is_memory:
            raise GraphValueError(f"Fold.type = {self.type.value} is not a Data* memory type")
        _check_range("channels", self.channels, 1, 2**31 - 1, "Fold")
        _check_range("positions", self.positions, 1, 2**31 - 1, "Fold")
        if self.indices.size == 0:
            raise GraphValueError("Fold.indices must not be empty")
        _check_range("indices", self.indices, 0, self.channels * self.positions - 1, "Fold")

    def arity(self) -> tuple[int, int]:
        return (1, 1)

    def input_port(self, index: int) -> Port:
        return _one(_port(self.type, self.channels), self, index)

    def output_port(self) -> Port:
        return _port(self.type, int(self.indices.size))

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        x = np.asarray(inputs[0])
        if x.shape[0] % self.positions:
            raise GraphValueError(f"Fold: {x.shape[0]} rows are not a multiple of {self.positions} positions")
        return x.reshape(-1, self.positions * self.channels)[:, self.indices]
