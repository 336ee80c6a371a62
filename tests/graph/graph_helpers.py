"""Shared helpers of the graph tests."""

from __future__ import annotations

import numpy as np

from bss2.graph import (
    CADCMembraneReadoutView,
    ConnectionType,
    DataInput,
    DataOutput,
    ExecutionInstance,
    ExternalInput,
    GraphBuilder,
    MACSynapseArrayView,
    NeuronView,
)

CT = ConnectionType


def mac_chain(builder: GraphBuilder, rows: int = 4, columns: int = 3, synram: int = 0,
              instance: ExecutionInstance | None = None):
    """ExternalInput -> DataInput -> MAC view -> neurons -> CADC -> DataOutput; returns the descriptors."""
    instance = instance or ExecutionInstance(1)
    x = builder.add(ExternalInput(CT.DataUInt5, rows), execution_instance=ExecutionInstance(0))
    d = builder.add(DataInput(CT.UInt5, rows), [x], instance)
    w = np.arange(rows * columns).reshape(rows, columns) % 127 - 63
    s = builder.add(MACSynapseArrayView(synram, range(rows), range(columns), w), [d], instance)
    n = builder.add(NeuronView(synram, range(columns)), [s], instance)
    c = builder.add(CADCMembraneReadoutView(synram, range(columns)), [n], instance)
    o = builder.add(DataOutput(CT.Int8, columns), [c], instance)
    return x, d, s, n, c, o
