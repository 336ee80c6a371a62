"""Typed coordinates for every entity of the chip (``XOnY``: an X located on a Y).

A coordinate is a small immutable value: range-checked on construction, hashable, ordered within its
type, never equal to a coordinate of another type (so a wrong index is a type error, not a silent bug).
Every coordinate type has a dense enumeration ``0 <= enum < SIZE`` (``int(c)`` or ``c.value``);
``iter_all(T)`` yields all of them in that order.

Composite coordinates (for example :class:`AtomicNeuronOnDLS`, made of a :class:`NeuronRowOnDLS` and a
:class:`NeuronColumnOnDLS`) are built from their components, given positionally in the documented order
(major first), by keyword, or as typed component coordinates in any order; their enum is row-major over
the components. ``T.from_enum(i)`` builds one from its enum.

Geometry (see CHIP.md): 2 hemispheres, each with one synram of 256 x 256 synapses, 128 synapse drivers
(driver d drives rows 2d and 2d+1 and listens on PADI bus d % 4), 4 PADI buses, one CADC with a causal
and an acausal channel per column; 512 neurons in 2 rows x 256 columns, 4 quadrants of 128; 4 CapMem blocks
of 130 columns x 24 rows; a crossbar of 20 inputs x 12 outputs; 8 background spike sources; 2 PPUs with
4096 memory words each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

from .errors import CoordinateRangeError, HalTypeError

C = TypeVar("C", bound="Coordinate")


class Coordinate:
    """Base of all coordinate types: an integer enum in ``[0, SIZE)`` tagged with its type."""

    __slots__ = ("_value",)
    SIZE: ClassVar[int] = 1
    _components: ClassVar[tuple[tuple[str, type[Coordinate]], ...]] = ()
    _strides: ClassVar[tuple[int, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls._components:
            size = 1
            strides = []
            for _, component in reversed(cls._components):
                strides.append(size)
                size *= component.SIZE
            cls.SIZE = size
            cls._strides = tuple(reversed(strides))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not self._components:
            if kwargs or len(args) != 1:
                if not args and not kwargs and self.SIZE == 1:
                    self._value = 0
                    return
                raise HalTypeError(f"{type(self).__name__} takes one integer value, got {args!r} {kwargs!r}")
            self._value = self._check(args[0])
            return
        self._value = self._compose(args, kwargs)

    # -- construction helpers
    @classmethod
    def _check(cls, value: Any, what: str | None = None) -> int:
        if isinstance(value, Coordinate):
            if type(value) is not cls:
                raise HalTypeError(f"{what or cls.__name__} expects a {cls.__name__}, got {type(value).__name__}")
            return value._value
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise HalTypeError(f"{what or cls.__name__} must be an integer, got {value!r}")
        value = value.__index__()
        if not 0 <= value < cls.SIZE:
            raise CoordinateRangeError(f"{what or cls.__name__} = {value} is out of range [0, {cls.SIZE - 1}]")
        return value

    def _compose(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        names = [name for name, _ in self._components]
        values: dict[str, Any] = {}
        if args and all(isinstance(a, Coordinate) for a in args) and not kwargs:
            by_type = {component: name for name, component in self._components}
            for arg in args:
                name = by_type.get(type(arg))
                if name is None or name in values:
                    raise HalTypeError(
                        f"{type(self).__name__} is made of {', '.join(c.__name__ for _, c in self._components)}; "
                        f"got {type(arg).__name__}"
                    )
                values[name] = arg
        else:
            if len(args) > len(names):
                raise HalTypeError(f"{type(self).__name__} takes {len(names)} components ({', '.join(names)})")
            values.update(zip(names, args))
            for key, value in kwargs.items():
                if key not in names or key in values:
                    raise HalTypeError(f"{type(self).__name__} got an unexpected or repeated component {key!r}")
                values[key] = value
        missing = [n for n in names if n not in values]
        if missing:
            raise HalTypeError(f"{type(self).__name__} is missing component(s) {', '.join(missing)}")
        enum = 0
        for (name, component), stride in zip(self._components, self._strides):
            enum += component._check(values[name], f"{type(self).__name__}.{name} ({component.__name__})") * stride
        return enum

    @classmethod
    def from_enum(cls: type[C], value: int) -> C:
        """The coordinate with the given enum."""
        instance = object.__new__(cls)
        instance._value = cls._check(value, f"{cls.__name__} enum")
        return instance

    # -- value semantics
    @property
    def value(self) -> int:
        """The dense enum of this coordinate."""
        return self._value

    def to_enum(self) -> int:
        """The dense enum of this coordinate (same as ``int(self)``)."""
        return self._value

    def __int__(self) -> int:
        return self._value

    def __index__(self) -> int:
        return self._value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._value == self._value  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._value))

    def _order(self, other: object) -> int:
        if type(other) is not type(self):
            raise HalTypeError(f"cannot order {type(self).__name__} against {type(other).__name__}")
        return other._value  # type: ignore[attr-defined,no-any-return]

    def __lt__(self, other: object) -> bool:
        return self._value < self._order(other)

    def __le__(self, other: object) -> bool:
        return self._value <= self._order(other)

    def __gt__(self, other: object) -> bool:
        return self._value > self._order(other)

    def __ge__(self, other: object) -> bool:
        return self._value >= self._order(other)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self).from_enum, (self._value,))

    def __repr__(self) -> str:
        if not self._components:
            return f"{type(self).__name__}({self._value})"
        parts = ", ".join(f"{name}={int(getattr(self, name))}" for name, _ in self._components)
        return f"{type(self).__name__}({parts})"

    def _component(self, index: int) -> int:
        return (self._value // self._strides[index]) % self._components[index][1].SIZE


def _component_property(index: int, component: type[Coordinate]) -> property:
    def getter(self: Coordinate) -> Coordinate:
        return component.from_enum(self._component(index))

    getter.__doc__ = f"The {component.__name__} component."
    return property(getter)


def _composite(cls: type[C]) -> type[C]:
    """Class decorator adding typed accessors for the components of a composite coordinate."""
    for index, (name, component) in enumerate(cls._components):
        setattr(cls, name, _component_property(index, component))
    return cls


def iter_all(coordinate_type: type[C]) -> Iterator[C]:
    """Every coordinate of a type, in enum order."""
    for value in range(coordinate_type.SIZE):
        yield coordinate_type.from_enum(value)


# ============================================================================ linear (one-number) types


class HemisphereOnDLS(Coordinate):
    """Hemisphere: 0 top, 1 bottom."""

    __slots__ = ()
    SIZE = 2

    def to_synram(self) -> SynramOnDLS:
        """The synapse array of this hemisphere."""
        return SynramOnDLS(self._value)


class SynramOnDLS(Coordinate):
    """Synapse array (synram): 0 top, 1 bottom."""

    __slots__ = ()
    SIZE = 2

    def to_hemisphere(self) -> HemisphereOnDLS:
        """The hemisphere holding this synram."""
        return HemisphereOnDLS(self._value)

    def to_cadc(self) -> CADCOnDLS:
        """The CADC digitising this synram's neurons."""
        return CADCOnDLS(self._value)

    def to_synapse_driver_block(self) -> SynapseDriverBlockOnDLS:
        """The synapse drivers of this synram."""
        return SynapseDriverBlockOnDLS(self._value)

    def to_padi_bus_block(self) -> PADIBusBlockOnDLS:
        """The PADI buses of this synram."""
        return PADIBusBlockOnDLS(self._value)

    def to_neuron_row(self) -> NeuronRowOnDLS:
        """The row of neurons below this synram."""
        return NeuronRowOnDLS(self._value)


class NeuronRowOnDLS(Coordinate):
    """Row of neurons (one per hemisphere)."""

    __slots__ = ()
    SIZE = 2

    def to_synram(self) -> SynramOnDLS:
        """The synram whose columns feed this neuron row."""
        return SynramOnDLS(self._value)


class NeuronColumnOnDLS(Coordinate):
    """Neuron column (0..255), shared by both hemispheres; one synapse column each."""

    __slots__ = ()
    SIZE = 256

    def to_capmem_column(self) -> CapMemColumnOnCapMemBlock:
        """The CapMem column holding this neuron column's parameters (column % 128)."""
        return CapMemColumnOnCapMemBlock(self._value % 128)

    def to_synapse_on_synapse_row(self) -> SynapseOnSynapseRow:
        """The synapse column feeding this neuron column."""
        return SynapseOnSynapseRow(self._value)

    def to_synapse_quad_column(self) -> SynapseQuadColumnOnDLS:
        """The synapse quad column containing this column."""
        return SynapseQuadColumnOnDLS(self._value // 4)

    def to_entry_on_quad(self) -> EntryOnQuad:
        """Position of this column within its quad."""
        return EntryOnQuad(self._value % 4)

    def to_cadc_channel_column(self) -> CADCChannelColumnOnSynram:
        """The CADC channel column digitising this column."""
        return CADCChannelColumnOnSynram(self._value)


class SynapseRowOnSynram(Coordinate):
    """Synapse row of a synram (0..255)."""

    __slots__ = ()
    SIZE = 256

    def to_synapse_driver(self) -> SynapseDriverOnSynapseDriverBlock:
        """The driver of this row (rows 2d and 2d+1 belong to driver d)."""
        return SynapseDriverOnSynapseDriverBlock(self._value // 2)

    def is_top_row_of_driver(self) -> bool:
        """Whether this is the driver's top (even) row."""
        return self._value % 2 == 0


class SynapseOnSynapseRow(Coordinate):
    """Synapse within a row (its column, 0..255)."""

    __slots__ = ()
    SIZE = 256

    def to_neuron_column(self) -> NeuronColumnOnDLS:
        """The neuron column fed by this synapse column."""
        return NeuronColumnOnDLS(self._value)


class SynapseQuadColumnOnDLS(Coordinate):
    """Column of synapse quads (four neighbouring synapses; 0..63)."""

    __slots__ = ()
    SIZE = 64

    def to_neuron_columns(self) -> tuple[NeuronColumnOnDLS, ...]:
        """The four neuron columns of this quad column."""
        return tuple(NeuronColumnOnDLS(4 * self._value + i) for i in range(4))


class EntryOnQuad(Coordinate):
    """Position within a quad (0..3)."""

    __slots__ = ()
    SIZE = 4


class SynapseDriverOnSynapseDriverBlock(Coordinate):
    """Synapse driver within a hemisphere (0..127)."""

    __slots__ = ()
    SIZE = 128

    def to_padi_bus(self) -> PADIBusOnPADIBusBlock:
        """The PADI bus this driver listens on (d % 4)."""
        return PADIBusOnPADIBusBlock(self._value % 4)

    def to_synapse_rows(self) -> tuple[SynapseRowOnSynram, SynapseRowOnSynram]:
        """The two rows (2d, 2d+1) this driver drives."""
        return SynapseRowOnSynram(2 * self._value), SynapseRowOnSynram(2 * self._value + 1)

    @property
    def row_select_address(self) -> int:
        """The 5-bit row-select address this driver compares label[10:6] against (d // 4)."""
        return self._value // 4


class SynapseDriverBlockOnDLS(Coordinate):
    """Block of synapse drivers (one per hemisphere)."""

    __slots__ = ()
    SIZE = 2

    def to_synram(self) -> SynramOnDLS:
        """The synram driven by this block."""
        return SynramOnDLS(self._value)


class PADIBusOnPADIBusBlock(Coordinate):
    """PADI bus within a hemisphere (0..3)."""

    __slots__ = ()
    SIZE = 4


class PADIBusBlockOnDLS(Coordinate):
    """Block of PADI buses (one per hemisphere)."""

    __slots__ = ()
    SIZE = 2


class NeuronEventOutputOnDLS(Coordinate):
    """Neuron event output (0..7): hemisphere * 4 + column // 64."""

    __slots__ = ()
    SIZE = 8

    def to_crossbar_input(self) -> CrossbarInputOnDLS:
        """The crossbar input fed by this event output (0..7)."""
        return CrossbarInputOnDLS(self._value)


class BackgroundSpikeSourceOnDLS(Coordinate):
    """Background spike source (0..7)."""

    __slots__ = ()
    SIZE = 8

    def to_crossbar_input(self) -> CrossbarInputOnDLS:
        """The crossbar input fed by this source (12..19)."""
        return CrossbarInputOnDLS(12 + self._value)


class SPL1Address(Coordinate):
    """FPGA event channel (0..3), selected by label[15:14] of injected events."""

    __slots__ = ()
    SIZE = 4

    def to_crossbar_input(self) -> CrossbarInputOnDLS:
        """The crossbar input of events injected on this channel (8..11)."""
        return CrossbarInputOnDLS(8 + self._value)

    def to_crossbar_output(self) -> CrossbarOutputOnDLS:
        """The crossbar output recorded on this channel (8..11)."""
        return CrossbarOutputOnDLS(8 + self._value)


class CrossbarInputOnDLS(Coordinate):
    """Crossbar input: 0..7 neuron event outputs, 8..11 FPGA channels, 12..19 background sources."""

    __slots__ = ()
    SIZE = 20


class CrossbarOutputOnDLS(Coordinate):
    """Crossbar output: 0..3 top PADI buses, 4..7 bottom PADI buses, 8..11 towards the FPGA."""

    __slots__ = ()
    SIZE = 12

    def to_padi_bus(self) -> PADIBusOnDLS | None:
        """The PADI bus fed by this output, or None for the outputs towards the FPGA."""
        return PADIBusOnDLS.from_enum(self._value) if self._value < 8 else None


class CapMemBlockOnDLS(Coordinate):
    """CapMem block = quadrant (0..3): hemisphere * 2 + column // 128."""

    __slots__ = ()
    SIZE = 4

    def to_hemisphere(self) -> HemisphereOnDLS:
        """The hemisphere of this quadrant."""
        return HemisphereOnDLS(self._value // 2)


class CapMemColumnOnCapMemBlock(Coordinate):
    """CapMem column: 0..127 one per neuron of the quadrant, 128 and 129 shared."""

    __slots__ = ()
    SIZE = 130

    @property
    def is_shared(self) -> bool:
        """Whether this is one of the shared columns (128, 129)."""
        return self._value >= 128


class CapMemRowOnCapMemBlock(Coordinate):
    """CapMem row (0..23): one analog parameter (named in the register map's ``capmem_rows``)."""

    __slots__ = ()
    SIZE = 24


class CADCOnDLS(Coordinate):
    """Columnar ADC (one per hemisphere)."""

    __slots__ = ()
    SIZE = 2


class CADCChannelType(Coordinate):
    """CADC channel type: 0 causal, 1 acausal."""

    __slots__ = ()
    SIZE = 2


class CADCChannelColumnOnSynram(Coordinate):
    """CADC channel column (0..255)."""

    __slots__ = ()
    SIZE = 256


class PPUOnDLS(Coordinate):
    """Embedded processor: 0 top, 1 bottom."""

    __slots__ = ()
    SIZE = 2


class PPUMemoryWordOnPPU(Coordinate):
    """Word of a PPU's memory (0..4095)."""

    __slots__ = ()
    SIZE = 4096


class ReadoutChannelOnDLS(Coordinate):
    """Readout channel (MADC input) 0 or 1."""

    __slots__ = ()
    SIZE = 2


class ChipIdOnDLS(Coordinate):
    """The chip id register (a single instance)."""

    __slots__ = ()


class ChipResetOnDLS(Coordinate):
    """The chip reset register (a single instance)."""

    __slots__ = ()


class TimerOnDLS(Coordinate):
    """The FPGA timer (a single instance)."""

    __slots__ = ()


class EventRecordingConfigOnDLS(Coordinate):
    """The FPGA event recording switch (a single instance)."""

    __slots__ = ()


class NeuronResetOnDLS(Coordinate):
    """The neuron reset trigger (a single instance)."""

    __slots__ = ()


class SpikeInjectionOnDLS(Coordinate):
    """The register-based spike injection trigger (a single instance)."""

    __slots__ = ()


class MADCOnDLS(Coordinate):
    """The membrane ADC (a single instance)."""

    __slots__ = ()


class CrossbarOutputConfigOnDLS(Coordinate):
    """The crossbar output configuration (a single instance)."""

    __slots__ = ()


# ================================================================================== composite types


@_composite
class SynapseRowOnDLS(Coordinate):
    """Synapse row of the chip: (synram, row)."""

    __slots__ = ()
    _components = (("synram", SynramOnDLS), ("row", SynapseRowOnSynram))
    synram: SynramOnDLS
    row: SynapseRowOnSynram


@_composite
class SynapseQuadOnSynram(Coordinate):
    """Synapse quad of a synram: (row, quad column)."""

    __slots__ = ()
    _components = (("row", SynapseRowOnSynram), ("column", SynapseQuadColumnOnDLS))
    row: SynapseRowOnSynram
    column: SynapseQuadColumnOnDLS


@_composite
class SynapseQuadOnDLS(Coordinate):
    """Synapse quad of the chip: (synram, row, quad column)."""

    __slots__ = ()
    _components = (("synram", SynramOnDLS), ("row", SynapseRowOnSynram), ("column", SynapseQuadColumnOnDLS))
    synram: SynramOnDLS
    row: SynapseRowOnSynram
    column: SynapseQuadColumnOnDLS

    def to_synapse_quad_on_synram(self) -> SynapseQuadOnSynram:
        """This quad's position within its synram."""
        return SynapseQuadOnSynram.from_enum(self._value % SynapseQuadOnSynram.SIZE)


@_composite
class SynapseOnSynram(Coordinate):
    """Synapse of a synram: (row, column)."""

    __slots__ = ()
    _components = (("row", SynapseRowOnSynram), ("column", SynapseOnSynapseRow))
    row: SynapseRowOnSynram
    column: SynapseOnSynapseRow

    def to_synapse_quad(self) -> SynapseQuadOnSynram:
        """The quad containing this synapse."""
        return SynapseQuadOnSynram(self._component(0), self._component(1) // 4)


@_composite
class SynapseOnDLS(Coordinate):
    """Synapse of the chip: (synram, row, column)."""

    __slots__ = ()
    _components = (("synram", SynramOnDLS), ("row", SynapseRowOnSynram), ("column", SynapseOnSynapseRow))
    synram: SynramOnDLS
    row: SynapseRowOnSynram
    column: SynapseOnSynapseRow

    def to_synapse_quad(self) -> SynapseQuadOnDLS:
        """The quad containing this synapse."""
        return SynapseQuadOnDLS(self._component(0), self._component(1), self._component(2) // 4)


@_composite
class SynapseDriverOnDLS(Coordinate):
    """Synapse driver of the chip: (block = hemisphere, driver)."""

    __slots__ = ()
    _components = (("block", SynapseDriverBlockOnDLS), ("driver", SynapseDriverOnSynapseDriverBlock))
    block: SynapseDriverBlockOnDLS
    driver: SynapseDriverOnSynapseDriverBlock

    def to_padi_bus(self) -> PADIBusOnDLS:
        """The PADI bus this driver listens on."""
        return PADIBusOnDLS(self._component(0), self._component(1) % 4)

    def to_synram(self) -> SynramOnDLS:
        """The synram this driver drives."""
        return SynramOnDLS(self._component(0))

    def to_synapse_rows(self) -> tuple[SynapseRowOnDLS, SynapseRowOnDLS]:
        """The two chip-level rows this driver drives."""
        d = self._component(1)
        return SynapseRowOnDLS(self._component(0), 2 * d), SynapseRowOnDLS(self._component(0), 2 * d + 1)


@_composite
class PADIBusOnDLS(Coordinate):
    """PADI bus of the chip: (block = hemisphere, bus)."""

    __slots__ = ()
    _components = (("block", PADIBusBlockOnDLS), ("bus", PADIBusOnPADIBusBlock))
    block: PADIBusBlockOnDLS
    bus: PADIBusOnPADIBusBlock

    def to_crossbar_output(self) -> CrossbarOutputOnDLS:
        """The crossbar output feeding this bus (block * 4 + bus)."""
        return CrossbarOutputOnDLS(self._value)


@_composite
class AtomicNeuronOnDLS(Coordinate):
    """Neuron of the chip: (row = hemisphere, column)."""

    __slots__ = ()
    _components = (("row", NeuronRowOnDLS), ("column", NeuronColumnOnDLS))
    row: NeuronRowOnDLS
    column: NeuronColumnOnDLS

    def to_synram(self) -> SynramOnDLS:
        """The synram whose column feeds this neuron."""
        return SynramOnDLS(self._component(0))

    def to_hemisphere(self) -> HemisphereOnDLS:
        """The hemisphere of this neuron."""
        return HemisphereOnDLS(self._component(0))

    def to_capmem_block(self) -> CapMemBlockOnDLS:
        """The quadrant / CapMem block (hemisphere * 2 + column // 128)."""
        return CapMemBlockOnDLS(2 * self._component(0) + self._component(1) // 128)

    def to_capmem_column(self) -> CapMemColumnOnCapMemBlock:
        """The CapMem column holding this neuron's parameters."""
        return CapMemColumnOnCapMemBlock(self._component(1) % 128)

    def to_capmem_cell(self, row: CapMemRowOnCapMemBlock | int) -> CapMemCellOnDLS:
        """The CapMem cell of parameter ``row`` of this neuron."""
        return CapMemCellOnDLS(self.to_capmem_block(), CapMemRowOnCapMemBlock(int(row)), self.to_capmem_column())

    def to_neuron_event_output(self) -> NeuronEventOutputOnDLS:
        """The event output carrying this neuron's spikes (hemisphere * 4 + column // 64)."""
        return NeuronEventOutputOnDLS(4 * self._component(0) + self._component(1) // 64)

    def to_cadc_channel(self, channel_type: CADCChannelType | int = 0) -> CADCChannelOnDLS:
        """The CADC channel digitising this neuron's membrane."""
        return CADCChannelOnDLS(CADCOnDLS(self._component(0)), CADCChannelType(int(channel_type)),
                                CADCChannelColumnOnSynram(self._component(1)))


@_composite
class CapMemCellOnCapMemBlock(Coordinate):
    """CapMem cell within a block: (row, column)."""

    __slots__ = ()
    _components = (("row", CapMemRowOnCapMemBlock), ("column", CapMemColumnOnCapMemBlock))
    row: CapMemRowOnCapMemBlock
    column: CapMemColumnOnCapMemBlock


@_composite
class CapMemCellOnDLS(Coordinate):
    """CapMem cell of the chip: (block, row, column)."""

    __slots__ = ()
    _components = (
        ("block", CapMemBlockOnDLS),
        ("row", CapMemRowOnCapMemBlock),
        ("column", CapMemColumnOnCapMemBlock),
    )
    block: CapMemBlockOnDLS
    row: CapMemRowOnCapMemBlock
    column: CapMemColumnOnCapMemBlock

    def to_atomic_neuron(self) -> AtomicNeuronOnDLS | None:
        """The neuron owning this cell, or None for the shared columns."""
        block, column = self._component(0), self._component(2)
        if column >= 128:
            return None
        return AtomicNeuronOnDLS(block // 2, (block % 2) * 128 + column)


@_composite
class CADCChannelOnDLS(Coordinate):
    """CADC channel: (cadc, channel type, column)."""

    __slots__ = ()
    _components = (("cadc", CADCOnDLS), ("channel_type", CADCChannelType), ("column", CADCChannelColumnOnSynram))
    cadc: CADCOnDLS
    channel_type: CADCChannelType
    column: CADCChannelColumnOnSynram

    def to_atomic_neuron(self) -> AtomicNeuronOnDLS:
        """The neuron this channel digitises."""
        return AtomicNeuronOnDLS(self._component(0), self._component(2))


@_composite
class CADCSampleRowOnDLS(Coordinate):
    """A row of CADC samples (all 256 columns of one CADC and channel type)."""

    __slots__ = ()
    _components = (("cadc", CADCOnDLS), ("channel_type", CADCChannelType))
    cadc: CADCOnDLS
    channel_type: CADCChannelType


@_composite
class CADCSampleQuadOnDLS(Coordinate):
    """Four neighbouring CADC samples: (cadc, channel type, quad column)."""

    __slots__ = ()
    _components = (("cadc", CADCOnDLS), ("channel_type", CADCChannelType), ("column", SynapseQuadColumnOnDLS))
    cadc: CADCOnDLS
    channel_type: CADCChannelType
    column: SynapseQuadColumnOnDLS

    def to_sample_row(self) -> CADCSampleRowOnDLS:
        """The sample row containing this quad."""
        return CADCSampleRowOnDLS(self._component(0), self._component(1))


@_composite
class CrossbarNodeOnDLS(Coordinate):
    """Crossbar node: (input, output)."""

    __slots__ = ()
    _components = (("input", CrossbarInputOnDLS), ("output", CrossbarOutputOnDLS))
    input: CrossbarInputOnDLS
    output: CrossbarOutputOnDLS


@_composite
class PPUMemoryWordOnDLS(Coordinate):
    """PPU memory word of the chip: (ppu, word)."""

    __slots__ = ()
    _components = (("ppu", PPUOnDLS), ("word", PPUMemoryWordOnPPU))
    ppu: PPUOnDLS
    word: PPUMemoryWordOnPPU


def all_coordinate_types() -> list[type[Coordinate]]:
    """Every concrete coordinate type defined here."""
    return [
        obj
        for obj in globals().values()
        if isinstance(obj, type) and issubclass(obj, Coordinate) and obj is not Coordinate
    ]
