"""Connection types and ports of signal-flow graph vertices.

A port is a connection type (what flows: spike labels, synaptic currents, membrane voltages, hagen-mode
activations, or host memory) and a size (how many parallel channels: rows, columns, neurons, vector
entries). An edge connects a vertex's output port, or a contiguous slice of it, to one input port of a
later vertex; type and size must agree exactly.

Types whose name starts with ``Data`` live in host memory. Only they may cross execution instances.
"""

from __future__ import annotations

import enum

import attrs

from .errors import GraphValueError


class ConnectionType(enum.Enum):
    """What flows along an edge. ``Data*`` members are host-memory types, the others live on the chip."""

    # on chip, spiking data path
    CrossbarLabel = "CrossbarLabel"  #: 16-bit spike labels entering or leaving a crossbar node
    SynapseDriverInputLabel = "SynapseDriverInputLabel"  #: labels on a PADI bus, towards its synapse drivers
    SynapseInputLabel = "SynapseInputLabel"  #: labels driven onto synapse rows (one channel per row)
    SynapticInput = "SynapticInput"  #: synaptic currents into the neurons (one channel per column)
    MembraneVoltage = "MembraneVoltage"  #: membrane potentials (one channel per neuron)
    TimedSpikes = "TimedSpikes"  #: timed events sent by the FPGA into the chip
    TimedSpikesFromChip = "TimedSpikesFromChip"  #: timed events recorded by the FPGA
    TimedMADCSamples = "TimedMADCSamples"  #: MADC samples of one neuron with timestamps
    TimedCADCSamples = "TimedCADCSamples"  #: periodic CADC samples of a neuron row with timestamps
    # on chip, hagen mode
    UInt5 = "UInt5"  #: hagen-mode activations 0..31, one per synapse driver
    Int8 = "Int8"  #: CADC results relative to the reset baseline, -128..127
    # host memory
    DataUInt5 = "DataUInt5"
    DataInt8 = "DataInt8"
    DataInt32 = "DataInt32"
    DataTimedSpikes = "DataTimedSpikes"
    DataTimedSpikesFromChip = "DataTimedSpikesFromChip"
    DataTimedMADCSamples = "DataTimedMADCSamples"
    DataTimedCADCSamples = "DataTimedCADCSamples"

    @property
    def is_memory(self) -> bool:
        """Whether values of this type live in host memory (and may cross execution instances)."""
        return self.value.startswith("Data")


#: on-chip type -> the memory type a :class:`~bss2.graph.vertices.DataOutput` turns it into
TO_MEMORY: dict[ConnectionType, ConnectionType] = {
    ConnectionType.UInt5: ConnectionType.DataUInt5,
    ConnectionType.Int8: ConnectionType.DataInt8,
    ConnectionType.TimedSpikesFromChip: ConnectionType.DataTimedSpikesFromChip,
    ConnectionType.TimedMADCSamples: ConnectionType.DataTimedMADCSamples,
    ConnectionType.TimedCADCSamples: ConnectionType.DataTimedCADCSamples,
}

#: memory type -> the on-chip type a :class:`~bss2.graph.vertices.DataInput` turns it into
FROM_MEMORY: dict[ConnectionType, ConnectionType] = {
    ConnectionType.DataUInt5: ConnectionType.UInt5,
    ConnectionType.DataTimedSpikes: ConnectionType.TimedSpikes,
}


@attrs.frozen(slots=True)
class Port:
    """A typed, sized port. ``size`` counts channels (>= 1); an input port of size 0 accepts any size."""

    type: ConnectionType
    size: int

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.type, ConnectionType):
            raise GraphValueError(f"Port.type must be a ConnectionType, got {self.type!r}")
        if self.size < 0:
            raise GraphValueError(f"Port.size = {self.size} is out of range [0, inf)")

    def __str__(self) -> str:
        return f"{self.type.value}[{self.size or '*'}]"
