"""Mock mode: a statistical model of the analog matrix multiplication, and its parameters.

The model per 128-row tile is ``clamp(floor(x @ W * num_sends * gain + N(0, noise_std**2)), -128, 127)``, tiles
summed and clamped again. Its two parameters live in one process-global :class:`MockParameter` that
:func:`measure_mock_parameter` can fit to the active backend.
"""

from __future__ import annotations

import logging
import math

import attrs
import numpy as np
import torch

from . import _hardware

_log = logging.getLogger("bss2.ml")


def _check_gain(_instance: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"MockParameter.{attribute.name} must be in (0, 1], got {value}")


def _check_noise(_instance: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"MockParameter.{attribute.name} must be finite and >= 0 (LSB), got {value}")


@attrs.frozen
class MockParameter:
    """Parameters of the mock model.

    :ivar noise_std: standard deviation of the additive Gaussian noise per tile output, in LSB (>= 0).
    :ivar gain: output LSB per (input unit x weight unit) and send, in (0, 1].
    """

    noise_std: float = attrs.field(default=2.0, converter=float, validator=_check_noise)
    gain: float = attrs.field(default=0.002, converter=float, validator=_check_gain)


_mock_parameter = MockParameter()


def get_mock_parameter() -> MockParameter:
    """The process-global mock parameter used by mock forwards and by every backward pass."""
    return _mock_parameter


def set_mock_parameter(parameter: MockParameter) -> None:
    """Replace the process-global mock parameter."""
    global _mock_parameter
    if not isinstance(parameter, MockParameter):
        raise TypeError(f"set_mock_parameter: parameter must be a MockParameter, got {type(parameter).__name__}")
    _mock_parameter = parameter
    _log.debug("mock parameter set to %s", parameter)


def measure_mock_parameter(repetitions: int = 20,
                           levels: tuple[int, ...] = (4, 8, 12, 16, 20, 24, 28, 31)) -> MockParameter:
    """Measure gain and noise of the active backend through the hardware path.

    A full array (128 rows x 256 columns) gets a known weight — column ``c`` holds the constant ``w_c``, spanning
    -63..63 over the columns — and constant input vectors at several ``levels``, each sent ``repetitions`` times.
    gain = median of measured / ideal over entries in the linear range (``|measured|`` in 8..100 LSB);
    noise = median over columns of the standard deviation of the residual ``measured - gain * ideal``.

    :returns: the measured parameter; it is *not* installed — pass it to :func:`set_mock_parameter`.
    """
    rows, columns = _hardware.ARRAY_ROWS, _hardware.ARRAY_COLUMNS
    column_weight = np.round(np.linspace(_hardware.WEIGHT_MIN, _hardware.WEIGHT_MAX, columns)).astype(np.int64)
    weights = np.broadcast_to(column_weight, (rows, columns)).copy()
    level = np.repeat(np.asarray(levels, dtype=np.int64), repetitions)
    inputs = np.broadcast_to(level[:, None], (level.size, rows)).copy()
    measured = _hardware.run_matmul(inputs, weights, num_sends=1, wait_between_events=5).astype(np.float64)
    ideal = (level[:, None] * rows * column_weight[None, :]).astype(np.float64)
    linear = (np.abs(measured) >= 8) & (np.abs(measured) <= 100) & (ideal != 0)
    if not linear.any():
        raise RuntimeError("measure_mock_parameter: no output of the backend lies in the linear range 8..100 LSB")
    gain = float(np.median(measured[linear] / ideal[linear]))
    residual = np.where(linear, measured - gain * ideal, np.nan)
    usable = np.sum(linear, axis=0) >= 2
    noise = float(np.median(np.nanstd(residual[:, usable], axis=0)))
    parameter = MockParameter(noise_std=noise, gain=min(max(gain, 1e-9), 1.0))
    _log.info("measured mock parameter %s", parameter)
    return parameter


# Large CPU outputs draw their noise from a pool: a fresh N(0, 1) sample per entry costs more than the matmul
# itself on a CPU (~5 ns vs ~1 ns per output entry at N = 1024). Each (batch block, tile) of a call reads a contiguous
# window at a random offset into a pool of pre-drawn samples, and every call redraws a random stretch of the pool. The
# marginal distribution is exact; the price is that one call may reuse a sample at a few unrelated positions.
_BLOCK_BYTES = 2 << 20  # small calls: tile results per batch block, cached through noise, floor, clamp, sum
_TILE_BLOCK_BYTES = 1 << 20  # one tile's results per batch block and torch thread on the large CPU path (float GEMM)
# The same for the int8 GEMM, whose int32 products share the results' memory. Larger than the cache would suggest:
# each int8 GEMM call has a fixed cost (~12 us), and fewer calls win over cache-resident blocks.
_INT_TILE_BLOCK_BYTES = 1 << 20
_FRESH_NOISE_LIMIT = 1 << 20  # tile-result entries up to which every call draws fresh noise
_POOL_SIZE = 1 << 22
_POOL_REFRESH = 1 << 18
_noise_pools: dict[tuple[torch.device, torch.dtype, float], torch.Tensor] = {}
_vnni: bool | None = None  # whether the CPU has AVX512-VNNI (looked up once)


def _noise_pool(device: torch.device, dtype: torch.dtype, std: float) -> torch.Tensor:
    """The pool of N(0, std**2) samples (pre-scaled, so adding them is a plain add), a random stretch redrawn."""
    key = (device, dtype, std)
    pool = _noise_pools.get(key)
    if pool is None:
        if len(_noise_pools) >= 2:  # keep the pools of the two most recent noise levels
            del _noise_pools[next(iter(_noise_pools))]
        pool = _noise_pools[key] = torch.empty(_POOL_SIZE, device=device, dtype=dtype).normal_(0.0, std)
    else:
        start = int(torch.randint(0, _POOL_SIZE - _POOL_REFRESH + 1, ()))
        pool[start:start + _POOL_REFRESH].normal_(0.0, std)
    return pool


def _pool_offsets(pool: torch.Tensor, count: int, windows: int) -> list[int]:
    """Distinct random offsets (multiples of 64: aligned, vectorised adds) of ``windows`` windows of ``count`` samples.

    The windows of one batch block are its tiles' noise: distinct offsets give one output entry a different sample
    from each tile (overlapping windows only share samples between different entries).
    """
    choices = (pool.numel() - count) // 64 + 1
    if windows > choices:
        raise ValueError(f"{windows} distinct windows of {count} samples do not fit the pool")
    while True:
        offsets = (torch.randint(0, choices, (windows,)) * 64).tolist()
        if len(set(offsets)) == windows:
            return offsets


def _tile_bounds(rows: int) -> list[tuple[int, int]]:
    """(first, last) input rows of each hardware tile; the last tile may be shorter (its zero padding adds nothing),
    and an empty input still has one (empty) tile."""
    tile = _hardware.ARRAY_ROWS
    return [(start, min(rows, start + tile)) for start in range(0, max(rows, 1), tile)]


def _int8_gemm_is_fast() -> bool:
    """Whether :func:`torch._int_mm` runs on oneDNN's int8 kernels here.

    torch takes that route only with oneDNN enabled on a CPU with AVX512-VNNI (AMX, where present, makes it several
    times faster than a float32 GEMM); anywhere else it falls back to a naive triple loop, so the float GEMM is used.
    """
    global _vnni
    if _vnni is None:
        probe = getattr(torch.cpu, "_is_vnni_supported", None)  # private: absent or failing means "no"
        try:
            _vnni = bool(probe()) if probe is not None else False
        except Exception:  # noqa: BLE001 - a capability probe must not break the mock
            _vnni = False
    return bool(_vnni) and torch.backends.mkldnn.is_available() and bool(torch.backends.mkldnn.enabled)


def _cpu_block_rows(batch: int, columns: int, bytes_per_thread: int, element_size: int) -> int:
    """Rows of one batch block: each torch thread works on its share of a block's rows, so the block grows with the
    threads the process uses (up to 4: the pool windows stay small), which also keeps the number of ops down."""
    block_bytes = bytes_per_thread * min(max(1, torch.get_num_threads()), 4)
    return max(1, min(batch, block_bytes // (element_size * columns)))


def _mock_matmul_cpu_large(x: torch.Tensor, weight: torch.Tensor, scale: float, noise_std: float) -> torch.Tensor:
    """The mock forward for large CPU calls: the int8 GEMM where it is fast and exact, else the float GEMM."""
    if x.dtype in (torch.float32, torch.float64) and _int8_gemm_is_fast():
        return _mock_matmul_cpu_int8(x, weight, scale, noise_std)
    return _mock_matmul_cpu_float(x, weight, scale, noise_std)


def _mock_matmul_cpu_int8(x: torch.Tensor, weight: torch.Tensor, scale: float, noise_std: float) -> torch.Tensor:
    """The mock forward for large CPU calls on int8 GEMMs: batch blocks outer, tiles inner.

    Exactness: the operands hold integers (inputs 0..31, weights -63..63: rounded and range-checked by the
    callers), so they are exact in int8, and :func:`torch._int_mm` sums a tile's at most 128 products exactly in int32
    (``|x_tile @ w_tile| <= 128 * 31 * 63 < 2**24``). Converting that sum to float is exact as well, so the tile
    product equals the float GEMM's bit for bit (whose partial sums are integers below ``2**24``, hence exact too).
    From there the steps are the model's: without noise ``product * scale`` is computed exactly as on the other paths
    (identical results); with noise ``N(0, noise_std**2) + scale * product`` is a single rounding (the float path
    folds the scale into the weights, which rounds each product). Then floor, clamp per tile, sum, clamp.

    Per (block, tile): one int8 GEMM of a (block, <= 128) slice of the inputs with the tile's weights into an int32
    buffer; converting it to float in place (float32: the same memory, element by element; the first tile converts
    straight into the block of the output); adding ``scale`` times it to the pool window of noise; floor and clamp in
    place; adding it to the block of the output (a few MiB per block, mostly in the caches).
    """
    batch, columns = x.shape[0], weight.shape[1]
    bounds = _tile_bounds(x.shape[1])
    inputs, weights = x.to(torch.int8), weight.to(torch.int8)
    block = _cpu_block_rows(batch, columns, _INT_TILE_BLOCK_BYTES, 4)
    noisy = noise_std > 0
    pool = _noise_pool(x.device, x.dtype, noise_std) if noisy and block * columns <= _POOL_SIZE // 4 else None
    out = torch.empty((batch, columns), dtype=x.dtype, device=x.device)
    products = torch.empty((block, columns), dtype=torch.int32, device=x.device)
    if x.dtype == torch.float32:  # the tile results overwrite their own products
        results = products.view(torch.float32)
    else:
        results = torch.empty((block, columns), dtype=x.dtype, device=x.device)
    low, high = _hardware.OUTPUT_MIN, _hardware.OUTPUT_MAX
    input_tiles = [inputs[:, first:last] for first, last in bounds]
    weight_tiles = [weights[first:last] for first, last in bounds]
    for start in range(0, batch, block):
        stop = min(batch, start + block)
        accumulator, product, result = out[start:stop], products[:stop - start], results[:stop - start]
        shape = accumulator.shape
        offsets = _pool_offsets(pool, accumulator.numel(), len(bounds)) if pool is not None else None
        for index, (input_tile, weight_tile) in enumerate(zip(input_tiles, weight_tiles)):
            torch._int_mm(input_tile[start:stop], weight_tile, out=product)
            part = accumulator if index == 0 else result
            part.copy_(product)
            if offsets is not None:
                torch.add(pool.as_strided(shape, (columns, 1), offsets[index]), part, alpha=scale, out=part)
            elif noisy:
                torch.add(torch.empty_like(part).normal_(0.0, noise_std), part, alpha=scale, out=part)
            else:
                part.mul_(scale)
            part.floor_().clamp_(low, high)
            if index:
                accumulator.add_(part)
        if len(bounds) > 1:
            accumulator.clamp_(low, high)  # while the block is in the cache
    return out


def _mock_matmul_cpu_float(x: torch.Tensor, weight: torch.Tensor, scale: float, noise_std: float) -> torch.Tensor:
    """The mock forward for large CPU calls on float GEMMs: batch blocks outer, tiles inner, one 2-D GEMM per (block,
    tile).

    Each GEMM multiplies a (block, <= 128) slice of ``x`` with one 128-row weight tile and writes a cache-sized
    (block, M) result; floor and clamp run in place on it and it is added to the block's accumulator, which is the
    block of the output itself (the first tile writes there directly). With noise the GEMM adds its
    products to the noise window (C = A @ B + C), so the noise costs no separate pass. The last tile may be shorter
    than 128 rows: the zero padding of the model contributes nothing, so it is left out.
    """
    batch, columns = x.shape[0], weight.shape[1]
    bounds = _tile_bounds(x.shape[1])
    noisy = noise_std > 0
    if noisy:
        weight = weight * scale  # see mock_matmul
    block = _cpu_block_rows(batch, columns, _TILE_BLOCK_BYTES, x.element_size())
    pooled = noisy and block * columns <= _POOL_SIZE // 4
    pool = _noise_pool(x.device, x.dtype, noise_std) if pooled else None
    out = torch.empty((batch, columns), dtype=x.dtype, device=x.device)
    buffer = torch.empty((block, columns), dtype=x.dtype, device=x.device)
    low, high = _hardware.OUTPUT_MIN, _hardware.OUTPUT_MAX
    for start in range(0, batch, block):
        stop = min(batch, start + block)
        accumulator = out[start:stop]
        count = accumulator.numel()
        offsets = _pool_offsets(pool, count, len(bounds)) if pool is not None else None
        for index, (first, last) in enumerate(bounds):
            # The first tile writes straight into the accumulator, the others into the buffer.
            part = accumulator if index == 0 else buffer[:stop - start]
            x_tile, weight_tile = x[start:stop, first:last], weight[first:last]
            if offsets is not None:
                offset = offsets[index]
                torch.addmm(pool[offset:offset + count].view(part.shape), x_tile, weight_tile, out=part)
            elif noisy:
                part.normal_(0.0, noise_std).addmm_(x_tile, weight_tile)
            else:
                torch.mm(x_tile, weight_tile, out=part).mul_(scale)
            part.floor_().clamp_(low, high)
            if index:
                accumulator.add_(part)
        if len(bounds) > 1:
            accumulator.clamp_(low, high)  # while the block is in the cache
    return out


def mock_matmul(x: torch.Tensor, weight: torch.Tensor, num_sends: int, parameter: MockParameter) -> torch.Tensor:
    """The mock forward of a 2-D matmul (no gradient tracking).

    Per 128-row tile: ``clamp(floor(x @ W * num_sends * gain + N(0, noise_std**2)), -128, 127)``; the tiles'
    results are summed and clamped again. Large CPU calls go through :func:`_mock_matmul_cpu_large` (int8 GEMMs where
    the CPU runs them fast, float GEMMs elsewhere); otherwise all tiles go through one batched GEMM, on a CPU in batch
    blocks so the element-wise steps run in place on cache-sized data.

    :param x: (batch, N) floating tensor, already rounded and range-checked (integers 0..31: the int8 path relies on
        it, as it does on the weights' -63..63).
    :param weight: (N, M) floating tensor, same dtype and device as ``x``.
    :returns: (batch, M) tensor of integer values in -128..127, dtype and device of ``x``.
    """
    batch, rows = x.shape
    columns = weight.shape[1]
    tile = _hardware.ARRAY_ROWS
    tiles = max(1, -(-rows // tile))
    scale = float(num_sends) * parameter.gain
    if x.device.type == "cpu" and batch and columns and tiles * batch * columns > _FRESH_NOISE_LIMIT:
        return _mock_matmul_cpu_large(x, weight, scale, parameter.noise_std)
    padding = tiles * tile - rows
    if padding and tiles > 1:
        x = torch.nn.functional.pad(x, (0, padding))
        weight = torch.nn.functional.pad(weight, (0, 0, 0, padding))
    noise_std = parameter.noise_std
    out = torch.empty((batch, columns), dtype=x.dtype, device=x.device)
    if batch == 0 or columns == 0:
        return out
    # With noise, the scale goes into the weights (one pass over N x M instead of one over tiles x batch x M); the
    # products are then no longer exact integers, which the noise makes irrelevant. Without noise the integer
    # products are scaled afterwards, so the result equals the ideal arithmetic except at exact multiples.
    fold_scale = noise_std > 0
    if fold_scale:
        weight = weight * scale
    if tiles == 1:
        x_tiles, weight_tiles = x.unsqueeze(0), weight.unsqueeze(0)
    else:
        x_tiles = x.view(batch, tiles, tile).transpose(0, 1)  # (tiles, batch, 128)
        weight_tiles = weight.view(tiles, tile, columns)
    # Cache-sized batch blocks pay off on a CPU; an accelerator takes the whole batch in one launch.
    block = batch
    if x.device.type == "cpu":
        block = max(1, min(batch, _BLOCK_BYTES // (x.element_size() * tiles * columns)))
    # Small calls (large CPU calls took the path above) draw fresh noise. One buffer holds the tile results of every
    # block.
    buffer = torch.empty((tiles, block, columns), dtype=x.dtype, device=x.device)
    for start in range(0, batch, block):
        stop = min(batch, start + block)
        part = buffer[:, :stop - start]  # (tiles, block, M)
        if fold_scale:
            part.normal_(0.0, noise_std).baddbmm_(x_tiles[:, start:stop], weight_tiles)
        else:
            torch.bmm(x_tiles[:, start:stop], weight_tiles, out=part).mul_(scale)
        part.floor_().clamp_(_hardware.OUTPUT_MIN, _hardware.OUTPUT_MAX)
        torch.sum(part, dim=0, out=out[start:stop])
    if tiles > 1:
        out.clamp_(_hardware.OUTPUT_MIN, _hardware.OUTPUT_MAX)
    return out
