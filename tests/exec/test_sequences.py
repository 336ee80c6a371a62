"""Runs of several graphs in any order, at any batch size, on one or several chips: every result equals the
exact integer arithmetic, whatever the chips hold from the runs before (configuration cache, placement,
remembered weight planes, lean and level-by-level paths)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bss2.graph import matmul_graph

from .conftest import exact_matmul


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_sequence_of_graphs_and_batches_is_exact(ideal_executor, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    chips = data.draw(st.integers(1, 3), label="chips")
    shapes = data.draw(st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=2, max_size=4), label="shapes")
    graphs = []
    for n, m in shapes:
        w = rng.integers(-63, 64, (n, m), dtype=np.int8)
        if data.draw(st.booleans(), label="immutable"):
            w.flags.writeable = False  # a model's weights: remembered by identity
        graphs.append((w, matmul_graph(w)))
    executor = ideal_executor(chips)
    order = data.draw(st.lists(st.integers(0, len(graphs) - 1), min_size=3, max_size=8), label="order")
    for k in order:
        w, (graph, x_in, y_out) = graphs[k]
        batch = data.draw(st.sampled_from([1, 2, 7, 40, 600]), label="batch")
        x = rng.integers(0, 32, (batch, w.shape[0]))
        outputs, _ = executor.run(graph, {x_in: x})
        assert np.array_equal(outputs[y_out], exact_matmul(x, w)), (k, batch)
