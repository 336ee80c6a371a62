"""The whole static configuration of a chip, and its differential encoding.

:class:`ChipConfig` is the register image of every *static* block (read-write configuration; not the
timer, not trigger or read-only registers): one uint32 word per address. Containers are written into it
and read out of it by coordinate; :meth:`ChipConfig.encode` yields every word, and
:meth:`ChipConfig.encode_diff` against a previously applied configuration yields only the words that
differ — the executor's reconfiguration cache sends nothing when nothing changed. Diffing is one array
comparison over the image (about 130 k words).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import coordinates as co
from .containers import CapMemBlock, Container, SynapseMatrix
from .errors import HalTypeError, HalValueError
from .program import encode_register_writes
from .regmap import REGISTER_MAP, Block

#: Blocks that are part of the static configuration.
STATIC_BLOCKS: tuple[Block, ...] = tuple(b for b in REGISTER_MAP if b.access == "rw" and b.name != "timer")

_IMAGE_SIZE = max(b.last_address for b in REGISTER_MAP) + 1


def _static_mask_and_defaults() -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros(_IMAGE_SIZE, dtype=bool)
    image = np.zeros(_IMAGE_SIZE, dtype=np.uint32)
    for block in STATIC_BLOCKS:
        addresses = block.all_addresses
        mask[addresses.reshape(-1)] = True
        image[addresses] = block.default_words()[None, :]
    return mask, image


_STATIC_MASK, _DEFAULT_IMAGE = _static_mask_and_defaults()
_STATIC_ADDRESSES = np.flatnonzero(_STATIC_MASK)
_CAPMEM = REGISTER_MAP["capmem_cell"]


class ChipConfig:
    """Register image of the static configuration (mutable; ``copy()`` to keep a snapshot).

    >>> from bss2.hal import ChipConfig, NeuronConfig, AtomicNeuronOnDLS
    >>> config = ChipConfig()
    >>> neuron = AtomicNeuronOnDLS(row=0, column=7)
    >>> config.set(neuron, NeuronConfig(enable_leak=False))
    >>> config.get(neuron, NeuronConfig).enable_leak
    False
    >>> addresses, words = config.encode_diff(ChipConfig())
    >>> len(addresses)
    1
    """

    __slots__ = ("_image",)

    def __init__(self, image: np.ndarray | None = None) -> None:
        if image is None:
            self._image = _DEFAULT_IMAGE.copy()
        else:
            image = np.asarray(image, dtype=np.uint32)
            if image.shape != _DEFAULT_IMAGE.shape:
                raise HalValueError(f"a ChipConfig image has {_DEFAULT_IMAGE.size} words, got {image.shape}")
            self._image = image.copy()

    # -- typed access
    def set(self, coordinate: co.Coordinate, container: Container) -> None:
        """Store ``container`` at ``coordinate`` (any static container, single or bulk)."""
        if not isinstance(container, Container):
            raise HalTypeError(f"ChipConfig.set needs a register container, got {type(container).__name__}")
        if container.BLOCK not in STATIC_BLOCKS:
            raise HalValueError(f"{type(container).__name__} ({container.BLOCK.name}) is not static configuration")
        addresses, words = container.encode(coordinate)
        self._image[addresses] = words

    def get(self, coordinate: co.Coordinate, container_type: type[Container]) -> Any:
        """The container of type ``container_type`` stored at ``coordinate``."""
        if container_type.BLOCK not in STATIC_BLOCKS:
            raise HalValueError(f"{container_type.__name__} is not static configuration")
        return container_type.decode(self._image[container_type.addresses(coordinate)])

    def write_words(self, addresses: np.ndarray, words: np.ndarray) -> None:
        """Store raw register words (for example the writes of a program); addresses outside the static
        configuration are rejected, nothing is stored then."""
        addresses = np.asarray(addresses, dtype=np.int64).reshape(-1)
        words = np.asarray(words).reshape(-1)
        if addresses.shape != words.shape:
            raise HalValueError(f"addresses and words differ in length: {addresses.size} != {words.size}")
        inside = (addresses >= 0) & (addresses < _IMAGE_SIZE)
        if not inside.all() or not _STATIC_MASK[addresses].all():
            bad = addresses[~inside | ~_STATIC_MASK[np.clip(addresses, 0, _IMAGE_SIZE - 1)]][0]
            raise HalValueError(f"address {int(bad):#08x} is not part of the static configuration")
        if words.size and (int(words.min()) < 0 or int(words.max()) > 0xFFFF_FFFF):
            raise HalValueError("words must be 32-bit register values")
        self._image[addresses] = words

    @classmethod
    def from_program_writes(cls, words: np.ndarray, base: ChipConfig | None = None) -> ChipConfig:
        """The configuration left by the register writes of an instruction stream (applied over ``base``).

        Writes to non-static registers (triggers, timer) are skipped; everything else is stored in order.
        """
        from . import wire

        all_addresses, all_data = wire.decode_instructions(words).writes()
        keep = (all_addresses < _IMAGE_SIZE) & _STATIC_MASK[np.clip(all_addresses, 0, _IMAGE_SIZE - 1)]
        config = base.copy() if base is not None else cls()
        config._image[all_addresses[keep]] = all_data[keep]  # later writes win (fancy assignment keeps the last)
        return config

    def synapse_matrix(self, synram: co.SynramOnDLS) -> SynapseMatrix:
        """The synapse matrix of ``synram``."""
        return self.get(synram, SynapseMatrix)  # type: ignore[no-any-return]

    def set_synapse_weights(self, synram: co.SynramOnDLS, weights: np.ndarray) -> None:
        """Replace only the weights (0..63, shape 256 x 256) of ``synram``, keeping labels and calibration."""
        weights = np.asarray(weights)
        if weights.shape != (256, 256):
            raise HalValueError(f"weights must have shape (256, 256), got {weights.shape}")
        if weights.size and (weights.min() < 0 or weights.max() > 63):
            raise HalValueError(f"weights must be in [0, 63], got [{int(weights.min())}, {int(weights.max())}]")
        addresses = SynapseMatrix.addresses(synram)[: 256 * 64]
        old = np.ascontiguousarray(self._image[addresses]).view(np.uint8).reshape(256, 256)
        new = (old & 0xC0) | weights.astype(np.uint8)
        self._image[addresses] = np.ascontiguousarray(new).view("<u4").reshape(-1)

    def capmem_block(self, block: co.CapMemBlockOnDLS) -> CapMemBlock:
        """The CapMem cells of ``block``."""
        return self.get(block, CapMemBlock)  # type: ignore[no-any-return]

    # -- encoding
    @property
    def image(self) -> np.ndarray:
        """Read-only view of the register image (index = address)."""
        view = self._image.view()
        view.setflags(write=False)
        return view

    def encode(self) -> tuple[np.ndarray, np.ndarray]:
        """``(addresses, words)`` of the whole static configuration."""
        return _STATIC_ADDRESSES.copy(), self._image[_STATIC_ADDRESSES]

    def encode_diff(self, previous: ChipConfig | None) -> tuple[np.ndarray, np.ndarray]:
        """Only the ``(addresses, words)`` that differ from ``previous`` (everything if it is None)."""
        if previous is None:
            return self.encode()
        changed = np.flatnonzero((self._image != previous._image) & _STATIC_MASK)
        return changed, self._image[changed]

    def to_words(self, previous: ChipConfig | None = None) -> np.ndarray:
        """Instruction words applying this configuration (differentially against ``previous``)."""
        addresses, data = self.encode_diff(previous)
        return encode_register_writes(addresses, data)

    def changes_capmem(self, previous: ChipConfig | None) -> bool:
        """Whether applying this configuration over ``previous`` rewrites CapMem cells (needs settling)."""
        addresses, _ = self.encode_diff(previous)
        return bool(np.any((addresses >= _CAPMEM.base) & (addresses <= _CAPMEM.last_address)))

    def copy(self) -> ChipConfig:
        """An independent copy."""
        return ChipConfig(self._image)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChipConfig):
            return NotImplemented
        return bool(np.array_equal(self._image[_STATIC_MASK], other._image[_STATIC_MASK]))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        differing = int(np.count_nonzero((self._image != _DEFAULT_IMAGE) & _STATIC_MASK))
        return f"ChipConfig({differing} of {_STATIC_ADDRESSES.size} words differ from reset)"
