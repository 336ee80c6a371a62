"""Register containers: immutable value objects generated from the register map.

Every block of :mod:`bss2.hal.regmap` gets one container class (named by the block's ``container`` entry,
e.g. :class:`NeuronConfig`). A container holds the field values of *one* instance of its block and knows
how to turn itself into register words for a coordinate and back:

>>> from bss2.hal import NeuronConfig, AtomicNeuronOnDLS
>>> config = NeuronConfig(enable_leak=False, membrane_capacitance=32)
>>> addresses, words = config.encode(AtomicNeuronOnDLS(row=0, column=3))
>>> NeuronConfig.decode(words) == config
True

Containers are frozen attrs classes: equality, hashing and ``repr`` come for free, changes are made with
``evolve``. Values are validated on construction (type and range, from the register map). ``to_dict`` /
``from_dict`` and ``to_yaml`` / ``from_yaml`` round-trip them.

Bulk containers cover a whole array with numpy in a few operations: :class:`SynapseMatrix` (all 65,536
synapses of one synram), :class:`CapMemBlock` (all cells of one quadrant), :class:`CADCSampleRow` (all 256
samples of one CADC row, read-only).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs
import numpy as np
import yaml

from . import coordinates as co
from .errors import HalTypeError, HalValueError, ReadOnlyError
from .regmap import REGISTER_MAP, Block, Field

T = TypeVar("T", bound="Container")


class Container:
    """Base of every register container (single-instance and bulk)."""

    __slots__ = ()
    BLOCK: ClassVar[Block]
    COORDINATE: ClassVar[type[co.Coordinate]]

    # -- addresses
    @classmethod
    def addresses(cls, coord: co.Coordinate) -> np.ndarray:
        """Register addresses of this container at ``coord`` (in word order)."""
        cls._check_coordinate(coord)
        instance = int(coord)
        block = cls.BLOCK
        return np.array([block.address(instance, w) for w in range(block.words)], dtype=np.int64)

    @classmethod
    def _check_coordinate(cls, coord: object) -> None:
        if type(coord) is not cls.COORDINATE:
            raise HalTypeError(
                f"{cls.__name__} is located by {cls.COORDINATE.__name__}, got {type(coord).__name__} ({coord!r})"
            )

    @classmethod
    def n_words(cls) -> int:
        """Number of register words of one container."""
        return cls.BLOCK.words

    # -- words
    def encode(self, coord: co.Coordinate) -> tuple[np.ndarray, np.ndarray]:
        """``(addresses, words)`` writing this container to ``coord`` (addresses int64, words uint32)."""
        if not self.BLOCK.writable:
            raise ReadOnlyError(f"{type(self).__name__} ({self.BLOCK.name}) is read-only and cannot be written")
        return self.addresses(coord), self.to_words()

    def to_words(self) -> np.ndarray:
        """The register words of this container (uint32), independent of location."""
        words = [0] * self.BLOCK.words
        for f in self.BLOCK.fields:
            value = getattr(self, f.name)
            values = value if f.repeat > 1 else (value,)
            for (word, offset), element in zip(f.bit_positions(), values):
                words[word] |= f.to_raw(element) << offset
        return np.array(words, dtype=np.uint32)

    @classmethod
    def decode(cls: type[T], words: Sequence[int] | np.ndarray) -> T:
        """The container held by ``words`` (as many as :meth:`n_words`)."""
        words_arr = np.asarray(words).reshape(-1)
        if words_arr.size != cls.BLOCK.words:
            raise HalValueError(f"{cls.__name__}.decode needs {cls.BLOCK.words} words, got {words_arr.size}")
        raw_words = [int(w) for w in words_arr]
        if any(not 0 <= w <= 0xFFFF_FFFF for w in raw_words):
            raise HalValueError(f"{cls.__name__}.decode: words must be 32-bit, got {raw_words}")
        values: dict[str, Any] = {}
        for f in cls.BLOCK.fields:
            elements = [f.from_raw((raw_words[word] >> offset) & f.mask) for word, offset in f.bit_positions()]
            values[f.name] = tuple(elements) if f.repeat > 1 else elements[0]
        return cls(**values)

    # -- plain data
    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (ints, bools, enum names, lists) for YAML/JSON."""
        result: dict[str, Any] = {}
        for f in self.BLOCK.fields:
            value = getattr(self, f.name)
            if f.repeat > 1:
                result[f.name] = [_plain(v) for v in value]
            else:
                result[f.name] = _plain(value)
        return result

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Inverse of :meth:`to_dict`; unknown keys raise."""
        unknown = set(data) - {f.name for f in cls.BLOCK.fields}
        if unknown:
            raise HalValueError(f"{cls.__name__}.from_dict: unknown field(s) {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls: type[T], text: str) -> T:
        """Inverse of :meth:`to_yaml`."""
        return cls.from_dict(yaml.safe_load(text) or {})

    def evolve(self: T, **changes: Any) -> T:
        """A copy with some fields changed (validated like a new container)."""
        return attrs.evolve(self, **changes)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return int(value)


# --------------------------------------------------------------------------- generated single containers


def _element_converter(block: Block, f: Field) -> Any:
    owner = f"{block.container}.{f.name}"

    def convert(value: Any) -> Any:
        if f.kind == "bool":
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            raise HalTypeError(f"{owner} must be a bool, got {value!r}")
        if f.kind == "enum":
            assert f.enum_type is not None
            if isinstance(value, f.enum_type):
                return value
            if isinstance(value, str):
                try:
                    return f.enum_type[value]
                except KeyError:
                    raise HalValueError(
                        f"{owner} = {value!r} is not one of {[m.name for m in f.enum_type]}"
                    ) from None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise HalTypeError(f"{owner} must be an integer, got {value!r}")
        value = int(value)
        if not f.low <= value <= f.high:
            raise HalValueError(f"{owner} = {value} is out of range [{f.low}, {f.high}]")
        if f.kind == "enum":
            assert f.enum_type is not None
            try:
                return f.enum_type(value)
            except ValueError:
                raise HalValueError(f"{owner} = {value} is not one of {[int(m) for m in f.enum_type]}") from None
        return value

    return convert


def _field_converter(block: Block, f: Field) -> Any:
    element = _element_converter(block, f)
    if f.repeat == 1:
        return element

    def convert(values: Any) -> tuple[Any, ...]:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise HalTypeError(f"{block.container}.{f.name} must be a sequence of {f.repeat} values, got {values!r}")
        if len(values) != f.repeat:
            raise HalValueError(f"{block.container}.{f.name} needs {f.repeat} values, got {len(values)}")
        return tuple(element(v) for v in values)

    return convert


def _default(f: Field) -> Any:
    if f.kind == "enum" and f.repeat == 1:
        assert f.enum_type is not None
        return f.enum_type[f.default] if isinstance(f.default, str) else f.enum_type(f.default)
    if f.repeat > 1:
        return tuple(f.default)
    return f.default


def _make_container(block: Block) -> type[Container]:
    attributes = {
        f.name: attrs.field(default=_default(f), converter=_field_converter(block, f))  # type: ignore[call-overload]
        for f in block.fields
    }
    cls = attrs.make_class(block.container, attributes, bases=(Container,), frozen=True, slots=True)
    cls.BLOCK = block
    cls.COORDINATE = block.coordinate
    field_docs = "\n".join(
        f"- ``{f.name}``: {f.doc} ({f.kind}{'' if f.repeat == 1 else f' x{f.repeat}'}, "
        f"range [{f.low}, {f.high}], default {f.default})"
        for f in block.fields
    )
    cls.__doc__ = (
        f"Register container of block ``{block.name}`` ({block.access}), located by "
        f":class:`~bss2.hal.coordinates.{block.coordinate.__name__}`.\n\n{block.doc}\n\nFields:\n\n{field_docs}\n"
    )
    cls.__module__ = __name__
    return cls


CONTAINERS: dict[str, type[Container]] = {block.container: _make_container(block) for block in REGISTER_MAP}
globals().update(CONTAINERS)

# Static names for readers and type checkers (the classes themselves come from registers.yaml).
ChipId: type[Container] = CONTAINERS["ChipId"]
ChipReset: type[Container] = CONTAINERS["ChipReset"]
Timer: type[Container] = CONTAINERS["Timer"]
EventRecordingConfig: type[Container] = CONTAINERS["EventRecordingConfig"]
NeuronReset: type[Container] = CONTAINERS["NeuronReset"]
SpikeInjection: type[Container] = CONTAINERS["SpikeInjection"]
MADCConfig: type[Container] = CONTAINERS["MADCConfig"]
MADCControl: type[Container] = CONTAINERS["MADCControl"]
ReadoutSourceSelection: type[Container] = CONTAINERS["ReadoutSourceSelection"]
CrossbarOutputConfig: type[Container] = CONTAINERS["CrossbarOutputConfig"]
CrossbarOutputEventCounter: type[Container] = CONTAINERS["CrossbarOutputEventCounter"]
PADIBusConfig: type[Container] = CONTAINERS["PADIBusConfig"]
BackgroundSpikeSourceConfig: type[Container] = CONTAINERS["BackgroundSpikeSourceConfig"]
CADCConfig: type[Container] = CONTAINERS["CADCConfig"]
CapMemBlockConfig: type[Container] = CONTAINERS["CapMemBlockConfig"]
PPUControlRegister: type[Container] = CONTAINERS["PPUControlRegister"]
PPUStatusRegister: type[Container] = CONTAINERS["PPUStatusRegister"]
CrossbarNode: type[Container] = CONTAINERS["CrossbarNode"]
SynapseDriverConfig: type[Container] = CONTAINERS["SynapseDriverConfig"]
NeuronConfig: type[Container] = CONTAINERS["NeuronConfig"]
NeuronBackendConfig: type[Container] = CONTAINERS["NeuronBackendConfig"]
CADCChannelConfig: type[Container] = CONTAINERS["CADCChannelConfig"]
CADCSampleQuad: type[Container] = CONTAINERS["CADCSampleQuad"]
CapMemCell: type[Container] = CONTAINERS["CapMemCell"]
PPUMemoryWord: type[Container] = CONTAINERS["PPUMemoryWord"]
SynapseQuad: type[Container] = CONTAINERS["SynapseQuad"]


# ----------------------------------------------------------------------------------- bulk containers


def _checked_array(owner: str, name: str, value: Any, shape: tuple[int, ...], high: int, dtype: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape:
        raise HalValueError(f"{owner}.{name} must have shape {shape}, got {array.shape}")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise HalTypeError(f"{owner}.{name} must hold integers, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > high):
        bad = array[(array < 0) | (array > high)].reshape(-1)[0]
        raise HalValueError(f"{owner}.{name} contains {int(bad)}, out of range [0, {high}]")
    result = array.astype(dtype)
    result.setflags(write=False)
    return result


def _array_eq(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b))


class BulkContainer(Container):
    """A container spanning many instances of one block, stored as numpy arrays (equal when all arrays are)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_array_eq(getattr(self, f.name), getattr(other, f.name)) for f in attrs.fields(type(self)))  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name).tolist() for f in attrs.fields(type(self))}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        return cls(**data)


@attrs.frozen(eq=False)
class SynapseMatrix(BulkContainer):
    """All 256 x 256 synapses of one synram (bulk view of block ``synapse_quad``).

    Arrays are indexed ``[row, column]`` (row 0..255, column 0..255): ``weights`` (0..63), ``labels``
    (0..63), ``time_calibs`` and ``amp_calibs`` (0..3). Located by :class:`SynramOnDLS`. Encoding is a
    byte-per-synapse packing viewed as 32-bit words: no per-synapse Python work.
    """

    BLOCK: ClassVar[Block] = REGISTER_MAP["synapse_quad"]
    COORDINATE: ClassVar[type[co.Coordinate]] = co.SynramOnDLS
    SHAPE: ClassVar[tuple[int, int]] = (256, 256)

    weights: np.ndarray = attrs.field(factory=lambda: np.zeros((256, 256), np.uint8))
    labels: np.ndarray = attrs.field(factory=lambda: np.zeros((256, 256), np.uint8))
    time_calibs: np.ndarray = attrs.field(factory=lambda: np.zeros((256, 256), np.uint8))
    amp_calibs: np.ndarray = attrs.field(factory=lambda: np.zeros((256, 256), np.uint8))

    def __attrs_post_init__(self) -> None:
        for name, high in (("weights", 63), ("labels", 63), ("time_calibs", 3), ("amp_calibs", 3)):
            object.__setattr__(self, name, _checked_array("SynapseMatrix", name, getattr(self, name), self.SHAPE, high, np.uint8))

    @classmethod
    def addresses(cls, coord: co.Coordinate) -> np.ndarray:
        cls._check_coordinate(coord)
        block = cls.BLOCK
        per_synram = co.SynapseQuadOnSynram.SIZE
        instances = int(coord) * per_synram + np.arange(per_synram, dtype=np.int64)
        return np.concatenate((block.base + instances, block.base + block.word_stride + instances))

    @classmethod
    def n_words(cls) -> int:
        return 2 * co.SynapseQuadOnSynram.SIZE

    def to_words(self) -> np.ndarray:
        weight_bytes = self.weights | (self.time_calibs << 6)
        label_bytes = self.labels | (self.amp_calibs << 6)
        planes = np.stack((weight_bytes, label_bytes))  # (2, 256, 256) uint8
        return np.ascontiguousarray(planes).view("<u4").reshape(-1).astype(np.uint32, copy=False)

    @classmethod
    def decode(cls, words: Sequence[int] | np.ndarray) -> SynapseMatrix:
        words_arr = np.asarray(words)
        if words_arr.size != cls.n_words():
            raise HalValueError(f"SynapseMatrix.decode needs {cls.n_words()} words, got {words_arr.size}")
        planes = np.ascontiguousarray(words_arr.astype("<u4")).view(np.uint8).reshape(2, 256, 256)
        return cls(
            weights=planes[0] & 0x3F, time_calibs=planes[0] >> 6, labels=planes[1] & 0x3F, amp_calibs=planes[1] >> 6
        )

    def __repr__(self) -> str:
        return (
            f"SynapseMatrix(weights: {np.count_nonzero(self.weights)} non-zero, max {int(self.weights.max())}; "
            f"labels: {len(np.unique(self.labels))} distinct)"
        )


@attrs.frozen(eq=False)
class CapMemBlock(BulkContainer):
    """All cells of one CapMem block (quadrant): ``values[row, column]``, 24 x 130, each 0..1022."""

    BLOCK: ClassVar[Block] = REGISTER_MAP["capmem_cell"]
    COORDINATE: ClassVar[type[co.Coordinate]] = co.CapMemBlockOnDLS
    SHAPE: ClassVar[tuple[int, int]] = (co.CapMemRowOnCapMemBlock.SIZE, co.CapMemColumnOnCapMemBlock.SIZE)

    values: np.ndarray = attrs.field(factory=lambda: np.zeros((24, 130), np.uint16))

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "values", _checked_array("CapMemBlock", "values", self.values, self.SHAPE, 1022, np.uint16))

    @classmethod
    def addresses(cls, coord: co.Coordinate) -> np.ndarray:
        cls._check_coordinate(coord)
        per_block = co.CapMemCellOnCapMemBlock.SIZE
        return cls.BLOCK.base + int(coord) * per_block + np.arange(per_block, dtype=np.int64)

    @classmethod
    def n_words(cls) -> int:
        return co.CapMemCellOnCapMemBlock.SIZE

    def to_words(self) -> np.ndarray:
        return self.values.reshape(-1).astype(np.uint32)

    @classmethod
    def decode(cls, words: Sequence[int] | np.ndarray) -> CapMemBlock:
        words_arr = np.asarray(words)
        if words_arr.size != cls.n_words():
            raise HalValueError(f"CapMemBlock.decode needs {cls.n_words()} words, got {words_arr.size}")
        return cls(values=(words_arr.astype(np.int64) & 0x3FF).reshape(cls.SHAPE))

    @classmethod
    def nominal(cls) -> CapMemBlock:
        """A block with every named cell at its nominal value from the register map."""
        values = np.zeros(cls.SHAPE, np.uint16)
        for row in REGISTER_MAP.capmem_neuron_rows:
            values[row.row, :128] = row.nominal
        for row in REGISTER_MAP.capmem_shared_rows:
            values[row.row, 128] = row.nominal
        return cls(values=values)

    def __repr__(self) -> str:
        return f"CapMemBlock(values: mean {float(self.values.mean()):.1f}, range [{int(self.values.min())}, {int(self.values.max())}])"


@attrs.frozen(eq=False)
class CADCSampleRow(BulkContainer):
    """All 256 samples (0..255) of one CADC row (read-only), located by :class:`CADCSampleRowOnDLS`."""

    BLOCK: ClassVar[Block] = REGISTER_MAP["cadc_sample_quad"]
    COORDINATE: ClassVar[type[co.Coordinate]] = co.CADCSampleRowOnDLS

    samples: np.ndarray = attrs.field(factory=lambda: np.zeros(256, np.uint8))

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "samples", _checked_array("CADCSampleRow", "samples", self.samples, (256,), 255, np.uint8))

    @classmethod
    def addresses(cls, coord: co.Coordinate) -> np.ndarray:
        cls._check_coordinate(coord)
        return cls.BLOCK.base + int(coord) * 64 + np.arange(64, dtype=np.int64)

    @classmethod
    def n_words(cls) -> int:
        return 64

    def to_words(self) -> np.ndarray:
        return np.ascontiguousarray(self.samples).view("<u4").astype(np.uint32)

    @classmethod
    def decode(cls, words: Sequence[int] | np.ndarray) -> CADCSampleRow:
        words_arr = np.asarray(words)
        if words_arr.size != 64:
            raise HalValueError(f"CADCSampleRow.decode needs 64 words, got {words_arr.size}")
        return cls(samples=np.ascontiguousarray(words_arr.astype("<u4")).view(np.uint8))


BULK_CONTAINERS: dict[str, type[Container]] = {
    "SynapseMatrix": SynapseMatrix,
    "CapMemBlock": CapMemBlock,
    "CADCSampleRow": CADCSampleRow,
}


def container_type(name: str) -> type[Container]:
    """Look up a container class by name (single or bulk)."""
    found = CONTAINERS.get(name) or BULK_CONTAINERS.get(name)
    if found is None:
        raise HalValueError(f"unknown container {name!r}; known: {sorted(CONTAINERS) + sorted(BULK_CONTAINERS)}")
    return found


def default_container_for(coord: co.Coordinate) -> type[Container]:
    """The container located by ``coord``'s type, if that is unambiguous."""
    matches = [c for c in (*CONTAINERS.values(), *BULK_CONTAINERS.values()) if c.COORDINATE is type(coord)]
    if len(matches) != 1:
        names = [c.__name__ for c in matches]
        raise HalTypeError(f"{type(coord).__name__} locates {len(matches)} containers {names}; name the container type")
    return matches[0]
