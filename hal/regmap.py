"""The register map, loaded from its single declarative source ``registers.yaml``.

:data:`REGISTER_MAP` holds every :class:`Block` with its :class:`Field` layout. Containers, the emulator's
register decoding and the documentation's register-map page are all derived from it. Loading checks the
source itself: counts match coordinate sizes, fields fit their words and do not overlap, blocks do not
overlap in the address space.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from functools import cached_property
from importlib import resources
from typing import Any, Literal

import attrs
import numpy as np
import yaml

from . import coordinates
from .errors import HalValueError
from .wire import ADDRESS_LIMIT

FieldKind = Literal["uint", "int", "bool", "enum"]


def _enum_type(name: str, spec: Mapping[str, Any]) -> type[enum.IntEnum]:
    members = dict(spec["values"])
    enum_type = enum.IntEnum(name, members)  # type: ignore[misc]
    enum_type.__doc__ = spec.get("doc", name)
    enum_type.__module__ = "bss2.hal.regmap"
    return enum_type


@attrs.frozen
class Field:
    """One field of a register block: ``width`` bits at ``offset`` of word ``word`` (``repeat`` elements)."""

    name: str
    word: int
    offset: int
    width: int
    kind: FieldKind = "uint"
    repeat: int = 1
    stride: int = 0
    default: Any = 0
    minimum: int | None = None
    maximum: int | None = None
    enum_type: type[enum.IntEnum] | None = None
    doc: str = ""

    @property
    def low(self) -> int:
        """Smallest allowed (raw) value."""
        if self.minimum is not None:
            return self.minimum
        return -(1 << (self.width - 1)) if self.kind == "int" else 0

    @property
    def high(self) -> int:
        """Largest allowed (raw) value."""
        if self.maximum is not None:
            return self.maximum
        return (1 << (self.width - 1)) - 1 if self.kind == "int" else (1 << self.width) - 1

    @property
    def mask(self) -> int:
        """Mask of ``width`` bits (unshifted)."""
        return (1 << self.width) - 1

    def bit_positions(self) -> Iterator[tuple[int, int]]:
        """``(word, bit offset)`` of every element."""
        for element in range(self.repeat):
            yield self.word, self.offset + element * self.stride

    def to_raw(self, value: Any) -> int:
        """The unsigned bit pattern of one element value (no range check)."""
        return int(value) & self.mask

    def from_raw(self, raw: int) -> Any:
        """One element value from its unsigned bit pattern."""
        if self.kind == "bool":
            return bool(raw)
        if self.kind == "int" and raw >= 1 << (self.width - 1):
            return raw - (1 << self.width)
        if self.kind == "enum":
            assert self.enum_type is not None
            try:
                return self.enum_type(raw)
            except ValueError:
                return raw
        return raw


@attrs.frozen
class Block:
    """A register block: ``count`` instances (one per coordinate) of ``words`` 32-bit words each."""

    name: str
    doc: str
    base: int
    coordinate: type[coordinates.Coordinate]
    count: int
    words: int
    access: Literal["rw", "ro", "wo"]
    container: str
    fields: tuple[Field, ...]
    instance_stride: int
    word_stride: int

    @property
    def writable(self) -> bool:
        """Whether the host may write this block."""
        return self.access != "ro"

    @property
    def readable(self) -> bool:
        """Whether reads return stored or measured data (write-only triggers read as 0)."""
        return self.access != "wo"

    def address(self, instance: int, word: int = 0) -> int:
        """Word address of ``word`` of instance ``instance``."""
        return self.base + instance * self.instance_stride + word * self.word_stride

    @cached_property
    def all_addresses(self) -> np.ndarray:
        """Addresses of every word of every instance, shape ``(count, words)``."""
        instances = np.arange(self.count, dtype=np.int64)[:, None]
        words = np.arange(self.words, dtype=np.int64)[None, :]
        return self.base + instances * self.instance_stride + words * self.word_stride

    def locate(self, addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Instance and word index of addresses inside this block (vectorised; no range check)."""
        offset = np.asarray(addresses, dtype=np.int64) - self.base
        if self.word_stride == 1:
            return offset // self.instance_stride, offset % self.instance_stride
        return offset % self.word_stride, offset // self.word_stride

    @property
    def last_address(self) -> int:
        """Highest address of the block."""
        return self.address(self.count - 1, self.words - 1)

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise HalValueError(f"block {self.name!r} has no field {name!r}; fields: {[f.name for f in self.fields]}")

    def default_words(self) -> np.ndarray:
        """The reset value of one instance's words (uint32, shape ``(words,)``)."""
        words = np.zeros(self.words, dtype=np.uint32)
        for f in self.fields:
            defaults = f.default if f.repeat > 1 else [f.default]
            for (word, offset), value in zip(f.bit_positions(), defaults):
                words[word] |= np.uint32(f.to_raw(_enum_value(f, value)) << offset)
        return words


def _enum_value(field: Field, value: Any) -> int:
    if field.kind == "enum" and isinstance(value, str):
        assert field.enum_type is not None
        return int(field.enum_type[value])
    return int(value)


@attrs.frozen
class CapMemRowName:
    """Name, nominal value and meaning of a CapMem row."""

    row: int
    name: str
    nominal: int
    doc: str


@attrs.frozen
class RegisterMap:
    """All register blocks, the enums used by their fields and the CapMem row names."""

    blocks: Mapping[str, Block]
    enums: Mapping[str, type[enum.IntEnum]]
    capmem_neuron_rows: tuple[CapMemRowName, ...]
    capmem_shared_rows: tuple[CapMemRowName, ...]

    def __getitem__(self, name: str) -> Block:
        try:
            return self.blocks[name]
        except KeyError:
            raise HalValueError(f"no register block {name!r}; blocks: {sorted(self.blocks)}") from None

    def __iter__(self) -> Iterator[Block]:
        return iter(self.blocks.values())

    @cached_property
    def address_table(self) -> tuple[np.ndarray, np.ndarray, list[Block]]:
        """Sorted block start addresses, end addresses (inclusive) and the blocks, for address lookup."""
        ordered = sorted(self.blocks.values(), key=lambda b: b.base)
        starts = np.array([b.base for b in ordered], dtype=np.int64)
        ends = np.array([b.last_address for b in ordered], dtype=np.int64)
        return starts, ends, ordered

    def capmem_row(self, name: str) -> int:
        """Row index of the named per-neuron CapMem parameter."""
        for row in self.capmem_neuron_rows:
            if row.name == name:
                return row.row
        raise HalValueError(f"no CapMem neuron row {name!r}; rows: {[r.name for r in self.capmem_neuron_rows]}")

    def capmem_shared_row(self, name: str) -> int:
        """Row index (in shared column 128) of the named shared CapMem parameter."""
        for row in self.capmem_shared_rows:
            if row.name == name:
                return row.row
        raise HalValueError(f"no shared CapMem row {name!r}; rows: {[r.name for r in self.capmem_shared_rows]}")


def _parse_field(block: str, spec: Mapping[str, Any], enums: Mapping[str, type[enum.IntEnum]]) -> Field:
    kind = spec.get("kind", "uint")
    width = int(spec["width"])
    enum_type = enums[spec["enum"]] if kind == "enum" else None
    repeat = int(spec.get("repeat", 1))
    default = spec.get("default", [0] * repeat if repeat > 1 else 0)
    if kind == "bool" and width != 1:
        raise HalValueError(f"{block}.{spec['name']}: bool fields have width 1")
    field = Field(
        name=spec["name"],
        word=int(spec["word"]),
        offset=int(spec["offset"]),
        width=width,
        kind=kind,
        repeat=repeat,
        stride=int(spec.get("stride", 0)),
        default=default,
        minimum=spec.get("min"),
        maximum=spec.get("max"),
        enum_type=enum_type,
        doc=str(spec.get("doc", "")),
    )
    defaults = default if repeat > 1 else [default]
    if len(defaults) != repeat:
        raise HalValueError(f"{block}.{field.name}: default has {len(defaults)} elements, repeat is {repeat}")
    for value in defaults:
        raw = _enum_value(field, value)
        if not field.low <= raw <= field.high:
            raise HalValueError(f"{block}.{field.name}: default {value} outside [{field.low}, {field.high}]")
    return field


def _check_layout(block: Block) -> None:
    used = np.zeros((block.words, 32), dtype=bool)
    for f in block.fields:
        for word, offset in f.bit_positions():
            if not 0 <= word < block.words or offset < 0 or offset + f.width > 32:
                raise HalValueError(f"{block.name}.{f.name}: bits {offset}..{offset + f.width - 1} of word {word} do not fit")
            if used[word, offset : offset + f.width].any():
                raise HalValueError(f"{block.name}.{f.name}: overlaps another field in word {word}")
            used[word, offset : offset + f.width] = True
    if not (block.word_stride == 1 and block.instance_stride == block.words) and not (
        block.instance_stride == 1 and block.word_stride == block.count
    ):
        raise HalValueError(f"{block.name}: layout must be instance-major (word_stride 1) or plane-major (instance_stride 1)")
    if block.count != block.coordinate.SIZE:
        raise HalValueError(f"{block.name}: count {block.count} != {block.coordinate.__name__}.SIZE {block.coordinate.SIZE}")


def load_register_map(text: str | None = None) -> RegisterMap:
    """Parse and check a register map (by default the packaged ``registers.yaml``)."""
    if text is None:
        text = resources.files("bss2.hal").joinpath("registers.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    source = yaml.load(text, Loader=loader)
    enums = {name: _enum_type(name, spec) for name, spec in source.get("enums", {}).items()}
    blocks: dict[str, Block] = {}
    for name, spec in source["blocks"].items():
        words = int(spec["words"])
        coordinate = getattr(coordinates, spec["coordinate"])
        block = Block(
            name=name,
            doc=" ".join(str(spec.get("doc", "")).split()),
            base=int(spec["base"]),
            coordinate=coordinate,
            count=int(spec["count"]),
            words=words,
            access=spec.get("access", "rw"),
            container=spec["container"],
            fields=tuple(_parse_field(name, f, enums) for f in spec["fields"]),
            instance_stride=int(spec.get("instance_stride", words)),
            word_stride=int(spec.get("word_stride", 1)),
        )
        _check_layout(block)
        blocks[name] = block
    ordered = sorted(blocks.values(), key=lambda b: b.base)
    for before, after in zip(ordered, ordered[1:]):
        if after.base <= before.last_address:
            raise HalValueError(f"{after.name} overlaps {before.name} in the address space")
    if ordered and ordered[-1].last_address >= ADDRESS_LIMIT:
        raise HalValueError(f"{ordered[-1].name}: addresses beyond the 24-bit address space")
    rows = source.get("capmem_rows", {})
    neuron_rows = tuple(CapMemRowName(i, r["name"], int(r["nominal"]), r.get("doc", "")) for i, r in enumerate(rows.get("neuron", [])))
    shared_rows = tuple(CapMemRowName(i, r["name"], int(r["nominal"]), r.get("doc", "")) for i, r in enumerate(rows.get("shared", [])))
    if len(neuron_rows) != coordinates.CapMemRowOnCapMemBlock.SIZE:
        raise HalValueError(f"capmem_rows.neuron names {len(neuron_rows)} rows, a block has {coordinates.CapMemRowOnCapMemBlock.SIZE}")
    return RegisterMap(blocks=blocks, enums=enums, capmem_neuron_rows=neuron_rows, capmem_shared_rows=shared_rows)


REGISTER_MAP: RegisterMap = load_register_map()
RowMode = REGISTER_MAP.enums["RowMode"]
ReadoutSignal = REGISTER_MAP.enums["ReadoutSignal"]


def block_of_addresses(addresses: np.ndarray) -> tuple[np.ndarray, list[Block]]:
    """For each address, the index (into the returned block list) of its block, or -1 if unmapped."""
    starts, ends, ordered = REGISTER_MAP.address_table
    addresses = np.asarray(addresses, dtype=np.int64)
    position = np.maximum(np.searchsorted(starts, addresses, side="right") - 1, 0)
    inside = (addresses >= starts[position]) & (addresses <= ends[position])
    return np.where(inside, position, -1), ordered
