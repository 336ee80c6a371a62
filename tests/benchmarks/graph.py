"""Benchmarks of ``bss2.graph``: building a partitioned matmul graph, and placing and routing a network.

Prints a table; ``--json PATH`` also writes the figures; ``--quick`` uses small sizes (seconds, for CI).

    python tests/benchmarks/graph.py [--quick] [--json out.json]

Times are the best of 5 runs (2 with ``--quick``); medians are reported beside them.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
from _common import parse_args, print_table, write_json

from bss2.graph import (
    ExternalSpikeSource,
    MACSynapseArrayView,
    NetworkBuilder,
    Population,
    Projection,
    matmul_graph,
    route,
    verify,
)


def best_of(repeat: int, function) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def bench_matmul(size: int, repeat: int) -> dict[str, object]:
    rng = np.random.default_rng(0)
    weights = rng.integers(-63, 64, size=(size, size), dtype=np.int8)
    weights.flags.writeable = False  # a read-only int8 operand is used without a copy
    best, median, (graph, _, _) = best_of(repeat, lambda: matmul_graph(weights))
    tiles = len(graph.find(MACSynapseArrayView))
    return {"what": f"build + partition matmul {size}x{size}", "best_s": best, "median_s": median,
            "detail": f"{tiles} tiles, {len(graph)} vertices, {len(graph.execution_instances())} instances",
            "target_s": 0.5 if size == 16384 else "-"}


def network(neurons: int, synapses: int, sources: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """``sources`` external sources (half excitatory, half inhibitory) -> one population of ``neurons``,
    ``synapses`` random connections without repeats, weights 1..63."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(sources * neurons, size=synapses, replace=False)
    pre, post = flat // neurons, flat % neurons
    weights = rng.integers(1, 64, synapses)
    b = NetworkBuilder()
    src = b.add(ExternalSpikeSource(sources))
    pop = b.add(Population(neurons))
    exc = pre < sources // 2
    b.add(Projection(src, pop, pre[exc], post[exc], weights[exc], "excitatory"))
    b.add(Projection(src, pop, pre[~exc], post[~exc], weights[~exc], "inhibitory"))
    return b.done()


def bench_route(neurons: int, synapses: int, sources: int, repeat: int) -> list[dict[str, object]]:
    def place_and_route():  # type: ignore[no-untyped-def]
        # a fresh Network each time, so the cached aggregation is part of the measurement
        return route(network(neurons, synapses, sources), verify_result=False)

    net = network(neurons, synapses, sources)
    build_best, build_median, _ = best_of(repeat, lambda: network(neurons, synapses, sources))
    best, median, result = best_of(repeat, place_and_route)
    verify_best, verify_median, _ = best_of(repeat, lambda: verify(result, net))
    rows = int((result.row_modes != 0).sum())  # type: ignore[attr-defined]
    return [
        {"what": f"network construction ({neurons} neurons, {synapses} synapses)", "best_s": build_best,
         "median_s": build_median, "detail": f"{sources} external sources", "target_s": "-"},
        {"what": f"place + route ({neurons} neurons, {synapses} synapses)", "best_s": best,
         "median_s": median, "detail": f"{rows} synapse rows used; includes network construction",
         "target_s": 2.0 if synapses == 100_000 else "-"},
        {"what": "verify routing (recompute connectivity)", "best_s": verify_best, "median_s": verify_median,
         "detail": "", "target_s": "-"},
    ]


def recurrent_network(neurons: int, inputs: int, p: float, seed: int = 1):  # type: ignore[no-untyped-def]
    """``inputs`` external sources -> ``neurons`` (placed over both hemispheres) with recurrent excitation
    and inhibition, each pair connected with probability ``p``."""
    rng = np.random.default_rng(seed)
    b = NetworkBuilder()
    src = b.add(ExternalSpikeSource(inputs))
    exc = b.add(Population(neurons // 2, record_spikes=True))
    inh = b.add(Population(neurons - neurons // 2))
    sizes = {src: inputs, exc: neurons // 2, inh: neurons - neurons // 2}
    for pre, post, receptor in ((src, exc, "excitatory"), (src, inh, "excitatory"), (exc, exc, "excitatory"),
                                (exc, inh, "excitatory"), (inh, exc, "inhibitory"), (inh, inh, "inhibitory")):
        mask = rng.random((sizes[pre], sizes[post])) < p
        b.add(Projection.from_matrix(pre, post, rng.integers(1, 64, mask.shape) * mask, receptor))
    return b.done()


def bench_recurrent(neurons: int, inputs: int, p: float, repeat: int) -> dict[str, object]:
    net = recurrent_network(neurons, inputs, p)
    best, median, result = best_of(repeat, lambda: route(recurrent_network(neurons, inputs, p), verify_result=False))
    synapses = int(net.connections().weights.size)
    return {"what": f"place + route recurrent ({neurons} neurons, {synapses} synapses)", "best_s": best,
            "median_s": median, "detail": f"{inputs} external sources, p={p}; "
            f"{int((result.row_modes != 0).sum())} rows",  # type: ignore[attr-defined]
            "target_s": "-"}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    repeat = 2 if args.quick else 5
    if args.quick:
        rows = [bench_matmul(2048, repeat)] + bench_route(512, 20_000, 256, repeat)
        rows.append(bench_recurrent(128, 32, 0.1, repeat))
    else:
        rows = [bench_matmul(16384, repeat)] + bench_route(512, 100_000, 256, repeat)
        rows.append(bench_recurrent(224, 32, 0.15, repeat))
    print_table("bss2.graph", rows)
    write_json(args.json, "graph", {"rows": rows}, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
