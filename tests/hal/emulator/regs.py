"""Register-level helpers for the emulator tests: build words from named fields of the register map."""

from __future__ import annotations

from typing import Any

import numpy as np

from bss2.hal import wire
from bss2.hal.regmap import REGISTER_MAP


def word(block: str, word_index: int = 0, **fields: Any) -> int:
    """One register word of ``block`` with the named fields set (others at their defaults)."""
    b = REGISTER_MAP[block]
    value = int(b.default_words()[word_index])
    for f in b.fields:
        if f.name not in fields or f.word != word_index:
            continue
        values = fields[f.name] if f.repeat > 1 else [fields[f.name]]
        for (_, offset), v in zip(f.bit_positions(), values):
            if f.enum_type is not None and isinstance(v, str):
                v = int(f.enum_type[v])
            value &= ~(f.mask << offset)
            value |= (int(v) & f.mask) << offset
    return value


def address(block: str, instance: int = 0, word_index: int = 0) -> int:
    return REGISTER_MAP[block].address(instance, word_index)


def write(block: str, instance: int = 0, word_index: int = 0, **fields: Any) -> np.ndarray:
    """A WRITE word setting fields of one instance."""
    return wire.encode_write([address(block, instance, word_index)], [word(block, word_index, **fields)])


def capmem_address(quadrant: int, row: str | int, column: int) -> int:
    r = REGISTER_MAP.capmem_row(row) if isinstance(row, str) else row
    return REGISTER_MAP["capmem_cell"].base + quadrant * 24 * 130 + r * 130 + column


def neuron_capmem_words(row: str, codes: np.ndarray) -> np.ndarray:
    """WRITE words setting a per-neuron CapMem row for all 512 neurons (codes indexed by neuron enum)."""
    neuron = np.arange(512)
    quadrant, column = (neuron // 256) * 2 + (neuron % 256) // 128, neuron % 128
    addresses = REGISTER_MAP["capmem_cell"].base + quadrant * 24 * 130 + REGISTER_MAP.capmem_row(row) * 130 + column
    return wire.encode_write(addresses, np.asarray(codes, dtype=np.int64))


def cadc_read(synram: int) -> np.ndarray:
    return wire.encode_read_block(REGISTER_MAP["cadc_sample_quad"].base + 128 * synram, 64)


def samples(responses: np.ndarray) -> np.ndarray:
    """All CADC sample rows read in a response stream, as (n_rows, 256) int."""
    decoded = wire.decode_responses(responses)
    return decoded.read_data.astype("<u4").view(np.uint8).reshape(-1, 256).astype(np.int64)
