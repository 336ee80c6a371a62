"""``bss2.hal`` — the register level of BrainScaleS-2.

Coordinates (:mod:`~bss2.hal.coordinates`), the register map (:mod:`~bss2.hal.regmap`, from
``registers.yaml``), register containers (:mod:`~bss2.hal.containers`), the wire format
(:mod:`~bss2.hal.wire`), playback programs (:mod:`~bss2.hal.program`), the differential chip
configuration (:mod:`~bss2.hal.chip_config`) and a YAML recorder (:mod:`~bss2.hal.recorder`).
The chip emulator lives in :mod:`bss2.hal.emulator` and is imported on demand.
"""

from . import coordinates, wire
from .chip_config import STATIC_BLOCKS, ChipConfig
from .containers import (
    CONTAINERS,
    BulkContainer,
    CADCSampleRow,
    CapMemBlock,
    Container,
    SynapseMatrix,
    container_type,
)
from .containers import *  # noqa: F401,F403  (the generated container classes)
from .coordinates import *  # noqa: F401,F403
from .coordinates import Coordinate, iter_all
from .errors import (
    CoordinateRangeError,
    EncodingError,
    HalError,
    HalTypeError,
    HalValueError,
    ReadOnlyError,
    TicketNotReadyError,
)
from .program import PlaybackProgram, PlaybackProgramBuilder, ProgramError, Ticket, program_from_words
from .recorder import Recorder
from .regmap import REGISTER_MAP, ReadoutSignal, RowMode

globals().update({name: cls for name, cls in CONTAINERS.items()})

__all__ = [
    "REGISTER_MAP",
    "STATIC_BLOCKS",
    "BulkContainer",
    "CADCSampleRow",
    "CapMemBlock",
    "ChipConfig",
    "Container",
    "Coordinate",
    "CoordinateRangeError",
    "EncodingError",
    "HalError",
    "HalTypeError",
    "HalValueError",
    "PlaybackProgram",
    "PlaybackProgramBuilder",
    "ProgramError",
    "ReadOnlyError",
    "ReadoutSignal",
    "Recorder",
    "RowMode",
    "SynapseMatrix",
    "Ticket",
    "TicketNotReadyError",
    "container_type",
    "coordinates",
    "iter_all",
    "program_from_words",
    "wire",
    *CONTAINERS,
    *(t.__name__ for t in coordinates.all_coordinate_types()),
]
