"""Event routing: crossbar -> PADI bus -> synapse driver, as lookup tables rebuilt when the config changes.

A crossbar node (input i, output o) passes label L if enabled and ``(L & mask) == target``. Per input a
65536-entry table holds the bit mask of the outputs a label reaches. Outputs 0..7 are PADI buses (top
hemisphere 0..3, bottom 4..7); a bus forwards (if enabled) to the 32 drivers ``d`` with ``d % 4 == bus``,
each accepting the event if ``enable_receiver`` and ``((L >> 6 & 31) ^ (d // 4)) & row_select_mask == 0``.
Outputs 8..11 go to the FPGA (recorded). Drivers are numbered globally ``g = hemisphere * 128 + d``.
"""

from __future__ import annotations

import numpy as np

N_INPUTS = 20
N_OUTPUTS = 12
FPGA_INPUT = 8
_LABELS = np.arange(1 << 16, dtype=np.uint32)
NO_TARGET = -1
MANY_TARGETS = -2


class RoutingTables:
    """Lookup tables of the current crossbar, PADI bus and driver configuration.

    ``crossbar`` (20, 65536) uint16 output masks. For bus b and row-select value rs the accepting drivers are
    ``targets[start[b, rs] : start[b, rs] + count[b, rs]]``. ``fpga_driver[L]`` is the single driver an
    FPGA-injected label reaches (``NO_TARGET``/``MANY_TARGETS``); ``fpga_recorded[L]`` whether it also reaches
    an FPGA output.
    """

    NOT_HAGEN = 257  # fpga_hagen: the label reaches a driver that is not in hagen mode, or several drivers

    def __init__(
        self,
        node_mask: np.ndarray,
        node_target: np.ndarray,
        node_enable: np.ndarray,
        bus_enable: np.ndarray,
        receiver_enable: np.ndarray,
        row_select_mask: np.ndarray,
        hagen_driver: np.ndarray,
    ) -> None:
        # node arrays are (20, 12); bus_enable (8,); driver arrays (256,)
        crossbar = np.zeros((N_INPUTS, 1 << 16), dtype=np.uint16)
        for i, o in zip(*np.nonzero(node_enable)):  # one pass per enabled node (<= 240), never per label
            match = (_LABELS & np.uint32(node_mask[i, o])) == np.uint32(node_target[i, o])
            crossbar[i] |= match.astype(np.uint16) << np.uint16(o)
        self.crossbar = crossbar

        # bus -> drivers: driver g listens on bus (g // 128) * 4 + g % 4 with address (g % 128) // 4
        drivers = np.arange(256)
        bus_of_driver = (drivers // 128) * 4 + drivers % 4
        address = (drivers % 128) // 4
        rs = np.arange(32)
        accepts = (
            receiver_enable[None, :].astype(bool)
            & ((((rs[:, None] ^ address[None, :]) & row_select_mask[None, :]) == 0))
        )  # (32 rs, 256 drivers)
        counts = np.zeros((8, 32), dtype=np.int64)
        starts = np.zeros((8, 32), dtype=np.int64)
        targets: list[np.ndarray] = []
        position = 0
        for bus in range(8):  # 8 buses, fixed
            on_bus = accepts & (bus_of_driver[None, :] == bus) & bool(bus_enable[bus])
            for value in range(32):
                hit = np.flatnonzero(on_bus[value])
                counts[bus, value] = hit.size
                starts[bus, value] = position
                position += hit.size
                targets.append(hit)
        self.count = counts
        self.start = starts
        self.targets = np.concatenate(targets).astype(np.int64) if position else np.zeros(0, np.int64)

        # combined table for FPGA inputs (input 8 + label[15:14]), the hot path of hagen programs
        fpga_masks = crossbar[FPGA_INPUT + (_LABELS >> 14).astype(np.int64), _LABELS]
        row_select = ((_LABELS >> 6) & 31).astype(np.int64)
        n_targets = np.zeros(1 << 16, dtype=np.int64)
        single = np.full(1 << 16, NO_TARGET, dtype=np.int64)
        for bus in range(8):
            on = ((fpga_masks >> np.uint16(bus)) & 1).astype(bool)
            c = np.where(on, counts[bus, row_select], 0)
            first = self.targets[np.minimum(starts[bus, row_select], max(self.targets.size - 1, 0))] if self.targets.size else single
            single = np.where((c == 1) & (n_targets == 0), first, single)
            n_targets += c
        self.fpga_driver = np.where(n_targets > 1, MANY_TARGETS, np.where(n_targets == 1, single, NO_TARGET)).astype(np.int16)
        self.fpga_recorded = (fpga_masks >> np.uint16(8)) != 0
        self.any_fpga_recorded = bool(self.fpga_recorded.any())
        self.any_multiple = bool((n_targets > 1).any())
        # hot-path table: the single hagen driver of a label (256 when it reaches none)
        hagen_target = np.where(single >= 0, hagen_driver[np.maximum(single, 0)], False)
        self.fpga_hagen = np.where(
            n_targets == 0, 256, np.where((n_targets == 1) & hagen_target, single, self.NOT_HAGEN)
        ).astype(np.int16)
        # PADI bus (hemisphere * 4 + bus) of the hagen driver of each FPGA label; 8 when there is none
        target = self.fpga_hagen.astype(np.int64)
        self.fpga_bus = np.where(target < 256, (target // 128) * 4 + target % 4, 8).astype(np.uint8)
        # for the hagen fast path: fpga_hagen as a column of its (vector, column) accumulator, where column 128
        # is left free (it carries the CADC baseline into the matmul): driver d -> d + (d >= 128), no driver
        # -> 257, not hagen -> 258; and the PADI bus bit of every column (0: none)
        self.hagen_column = (self.fpga_hagen + (self.fpga_hagen >= 128)).astype(np.intp)
        column = np.arange(259)
        driver = column - (column > 128)
        on_bus = (column != 128) & (driver < 256)
        self.hagen_bus_bit = np.where(on_bus, 1 << ((driver // 128) * 4 + driver % 4), 0).astype(np.uint8)
        # the compiled kernels' table: column in bits 15..0, its bus bit in bits 23..16
        self.hagen_column_bus = (self.hagen_column | (self.hagen_bus_bit[self.hagen_column].astype(np.intp) << 16)).astype(np.int32)

    def route(self, inputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Route events given by crossbar input (0..19) and label.

        Returns ``(event_index, driver)`` pairs of every driver reached (an event may reach several) and,
        per crossbar output 0..11, the indices of the events leaving it.
        """
        masks = self.crossbar[inputs.astype(np.int64), labels.astype(np.int64)]
        per_output = [np.flatnonzero((masks >> np.uint16(o)) & 1) for o in range(N_OUTPUTS)]
        row_select = ((labels.astype(np.int64) >> 6) & 31)
        sources: list[np.ndarray] = []
        drivers: list[np.ndarray] = []
        for bus in range(8):
            index = per_output[bus]
            if index.size == 0:
                continue
            c = self.count[bus, row_select[index]]
            if not c.any():
                continue
            src = np.repeat(index, c)
            first = np.repeat(self.start[bus, row_select[index]], c)
            within = np.arange(src.size) - np.repeat(np.cumsum(c) - c, c)
            sources.append(src)
            drivers.append(self.targets[first + within])
        if sources:
            return np.concatenate(sources), np.concatenate(drivers), per_output
        return np.zeros(0, np.int64), np.zeros(0, np.int64), per_output
