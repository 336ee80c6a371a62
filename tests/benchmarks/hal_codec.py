"""Throughput of the wire-format codec and the time to encode both synrams' synapse matrices.

Targets (issue 2): encode and decode of instruction streams at least 1 GB/s each way (the original
stack's bar was 125 MB/s); both synrams' full synapse matrices encoded into instruction words in under
5 ms.

    python tests/benchmarks/hal_codec.py [--quick] [--json PATH]
"""

from __future__ import annotations

import numpy as np
from _common import best_time, parse_args, print_table, write_json

from bss2.hal import ChipConfig, PlaybackProgramBuilder, SynapseMatrix, SynramOnDLS, wire
from bss2.hal.program import encode_register_writes


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n_words = 200_000 if args.quick else 4_000_000
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    addresses = rng.integers(0, wire.ADDRESS_LIMIT, n_words)
    data = rng.integers(0, 2**32, n_words)
    labels = rng.integers(0, 2**16, 3 * n_words)
    megabytes = n_words * wire.WORD_BYTES / 1e6

    writes = wire.encode_write(addresses, data)
    spikes = wire.encode_spikes(labels)
    block_writes = wire.encode_write_block(0, data[: 2 * n_words // 2])
    read_responses = wire.encode_read_data(addresses, data)
    block_responses = np.concatenate(
        [wire.encode_block_data(0x2000, data[i : i + 64]) for i in range(0, min(n_words, 64 * 4000), 64)]
    )
    block_mb = block_responses.size * 8 / 1e6

    rows = []

    def measure(name: str, function, size_mb: float) -> None:
        seconds = best_time(function, repeats)
        rows.append({"operation": name, "MB": round(size_mb, 1), "ms": seconds * 1e3, "MB/s": size_mb / seconds})

    measure("encode WRITE words", lambda: wire.encode_write(addresses, data), megabytes)
    measure("encode SPIKES (3 labels/word)", lambda: wire.encode_spikes(labels), spikes.size * 8 / 1e6)
    measure("encode WRITE_BLOCK", lambda: wire.encode_write_block(0, data), block_writes.size * 8 / 1e6)
    measure("decode instructions (WRITE)", lambda: wire.decode_instructions(writes), megabytes)
    measure("decode instructions (SPIKES)", lambda: wire.decode_instructions(spikes), spikes.size * 8 / 1e6)
    measure("decode instructions (WRITE_BLOCK)", lambda: wire.decode_instructions(block_writes), block_writes.size * 8 / 1e6)
    measure("decode responses (READ_DATA)", lambda: wire.decode_responses(read_responses), megabytes)
    measure("decode responses (BLOCK_DATA rows)", lambda: wire.decode_responses(block_responses), block_mb)
    print_table(f"wire codec throughput ({n_words} words per stream)", rows)

    matrices = [SynapseMatrix(weights=rng.integers(0, 64, (256, 256)), labels=rng.integers(0, 64, (256, 256))) for _ in range(2)]

    def encode_both() -> np.ndarray:
        parts = []
        for synram, matrix in enumerate(matrices):
            addresses_, words_ = matrix.encode(SynramOnDLS(synram))
            parts.append(encode_register_writes(addresses_, words_))
        return np.concatenate(parts)

    def builder_both() -> np.ndarray:
        builder = PlaybackProgramBuilder()
        for synram, matrix in enumerate(matrices):
            builder.write(SynramOnDLS(synram), matrix)
        return builder.done().words

    config = ChipConfig()
    for synram, matrix in enumerate(matrices):
        config.set(SynramOnDLS(synram), matrix)
    reference = ChipConfig()
    synapse_rows = [
        {"operation": "both synrams -> instruction words", "ms": best_time(encode_both, repeats) * 1e3},
        {"operation": "both synrams via PlaybackProgramBuilder", "ms": best_time(builder_both, repeats) * 1e3},
        {"operation": "ChipConfig diff -> words (all synapses changed)", "ms": best_time(lambda: config.to_words(reference), repeats) * 1e3},
        {"operation": "ChipConfig diff -> words (nothing changed)", "ms": best_time(lambda: config.to_words(config), repeats) * 1e3},
    ]
    print_table("synapse matrix encoding (target < 5 ms)", synapse_rows)
    write_json(args.json, "hal_codec", {"codec": rows, "synapse_matrices": synapse_rows}, args.quick)


if __name__ == "__main__":
    main()
