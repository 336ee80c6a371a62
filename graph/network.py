"""Spiking networks: populations, projections and recordings, built into an immutable :class:`Network`.

Items are added to a :class:`NetworkBuilder`, which returns a descriptor (its index) per item; projections
and recordings name populations by descriptor. :func:`bss2.graph.routing.route` places and routes a
network onto one chip.

Sources of events are the neurons of :class:`Population` s, :class:`ExternalSpikeSource` s (spikes sent
by the host) and :class:`BackgroundSpikeSourcePopulation` s (on-chip generators). Every source has a
global *source id*: sources are numbered item by item in the order the items were added. Every neuron
has a global *neuron id*, numbered population by population in the same way.
"""

from __future__ import annotations

import hashlib
from typing import Any, Union

import attrs
import numpy as np

from bss2.hal.coordinates import AtomicNeuronOnDLS

from .errors import GraphTypeError, GraphValueError

#: largest weight of one hardware synapse; larger logical weights use ceil(w / 63) synapses
SYNAPSE_WEIGHT_MAX = 63
RECEPTORS = ("excitatory", "inhibitory")


def _check(owner: str, name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise GraphValueError(f"{owner}.{name} = {value!r} is out of range [{low}, {high}]")


@attrs.frozen
class LIFParameters:
    """Leaky integrate-and-fire parameters as CapMem cell values (0..1022, uncalibrated DAC levels).

    The potentials (``v_*``) and bias currents (``i_bias_*``) name CapMem rows of the register map; the
    emulator's transfer curves map them to physical values (about 0.1..1.2 V, time constants of a few to
    tens of microseconds). ``refractory_time`` is in FPGA cycles (8 ns), 0..255. Defaults are the
    register map's nominal values.
    """

    v_leak: int = 400
    v_reset: int = 300
    v_threshold: int = 600
    i_bias_leak: int = 500
    i_bias_reset: int = 800
    i_bias_syn_exc_gm: int = 500
    i_bias_syn_inh_gm: int = 500
    i_bias_syn_exc_tau: int = 400
    i_bias_syn_inh_tau: int = 400
    refractory_time: int = 125

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(LIFParameters):
            high = 255 if field.name == "refractory_time" else 1022
            _check("LIFParameters", field.name, getattr(self, field.name), 0, high)

    def capmem(self) -> dict[str, int]:
        """The CapMem row name -> value pairs (everything but ``refractory_time``)."""
        return {k: v for k, v in attrs.asdict(self).items() if k != "refractory_time"}


def _placement(value: Any) -> tuple[AtomicNeuronOnDLS, ...] | None:
    if value is None:
        return None
    return tuple(n if isinstance(n, AtomicNeuronOnDLS) else AtomicNeuronOnDLS.from_enum(int(n)) for n in value)


@attrs.frozen
class Population:
    """``size`` LIF neurons (1..512) with ``parameters``; optionally placed on explicit neurons.

    ``record_spikes``: send their spikes to the host (recorded with timestamps).
    """

    size: int
    parameters: LIFParameters = LIFParameters()
    placement: tuple[AtomicNeuronOnDLS, ...] | None = attrs.field(default=None, converter=_placement)
    record_spikes: bool = False

    def __attrs_post_init__(self) -> None:
        _check("Population", "size", self.size, 1, 512)
        if self.placement is not None:
            if len(self.placement) != self.size:
                raise GraphValueError(f"Population.placement has {len(self.placement)} neurons, size is {self.size}")
            if len(set(self.placement)) != self.size:
                raise GraphValueError("Population.placement names a neuron twice")


@attrs.frozen
class ExternalSpikeSource:
    """``size`` (1..4096) sources whose spikes the host sends at given times."""

    size: int

    def __attrs_post_init__(self) -> None:
        _check("ExternalSpikeSource", "size", self.size, 1, 4096)


@attrs.frozen
class BackgroundSpikeSourcePopulation:
    """``size`` (1..8) on-chip background generators, one hardware source each.

    ``period`` in FPGA cycles (8 ns), 1..65535; Poisson (``enable_random``) emits with probability
    (rate + 1) / 256 per period; ``seed`` 0..2^32-1 (source k uses seed + k).
    """

    size: int
    period: int = 1000
    rate: int = 255
    enable_random: bool = False
    seed: int = 1

    def __attrs_post_init__(self) -> None:
        _check("BackgroundSpikeSourcePopulation", "size", self.size, 1, 8)
        _check("BackgroundSpikeSourcePopulation", "period", self.period, 1, 65535)
        _check("BackgroundSpikeSourcePopulation", "rate", self.rate, 0, 255)
        _check("BackgroundSpikeSourcePopulation", "seed", self.seed, 0, 2**32 - 9)


def _int_array(value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.size == 0:
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise GraphTypeError(f"connection arrays must be 1-d integer arrays, got {array.dtype} shape {array.shape}")
    array = array.astype(np.int64)
    array.flags.writeable = False
    return array


@attrs.frozen(eq=False)
class Projection:
    """Connections ``pre[pre_indices[k]] -> post[post_indices[k]]`` with integer ``weights[k] >= 0``.

    ``pre``/``post`` are descriptors returned by :meth:`NetworkBuilder.add` (``post`` must be a
    :class:`Population`); ``receptor`` is ``"excitatory"`` or ``"inhibitory"``. A weight above 63 is
    realised by ceil(w / 63) hardware synapses. Repeated pairs add up.
    """

    pre: int
    post: int
    pre_indices: np.ndarray = attrs.field(converter=_int_array)
    post_indices: np.ndarray = attrs.field(converter=_int_array)
    weights: np.ndarray = attrs.field(converter=_int_array)
    receptor: str = "excitatory"

    def __attrs_post_init__(self) -> None:
        n = self.pre_indices.size
        if self.post_indices.size != n or self.weights.size != n:
            raise GraphValueError(f"Projection arrays differ in length: {n}, {self.post_indices.size}, "
                                  f"{self.weights.size}")
        if n and self.weights.min() < 0:
            raise GraphValueError(f"Projection.weights contains {self.weights.min()}, out of range [0, inf); "
                                  "use receptor='inhibitory' for negative influence")
        if self.receptor not in RECEPTORS:
            raise GraphValueError(f"Projection.receptor = {self.receptor!r} is not one of {RECEPTORS}")

    @classmethod
    def from_matrix(cls, pre: int, post: int, weights: np.ndarray, receptor: str = "excitatory") -> Projection:
        """All non-zero entries of a dense (pre size, post size) weight matrix."""
        w = np.asarray(weights)
        i, j = np.nonzero(w)
        return cls(pre, post, i, j, w[i, j], receptor)

    def with_weights(self, weights: np.ndarray) -> Projection:
        """The same connections with new weights."""
        return attrs.evolve(self, weights=weights)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Projection):
            return NotImplemented
        return (self.pre, self.post, self.receptor) == (other.pre, other.post, other.receptor) and all(
            np.array_equal(getattr(self, n), getattr(other, n)) for n in ("pre_indices", "post_indices", "weights"))

    __hash__ = None  # type: ignore[assignment]


@attrs.frozen
class SpikeRecording:
    """Record the spikes of population ``population`` (same as ``Population(record_spikes=True)``)."""

    population: int


@attrs.frozen
class CADCRecording:
    """Periodic CADC samples of the membranes of ``neurons`` (indices) of ``population``.

    ``period`` in FPGA cycles between samples (>= 1; about 2 us = 250 cycles is typical).
    """

    population: int
    neurons: tuple[int, ...] = attrs.field(converter=lambda v: tuple(int(x) for x in v))
    period: int = 250


@attrs.frozen
class MADCRecording:
    """MADC recording of ``signal`` of neuron ``neuron`` of ``population``; ``sample_period`` in cycles."""

    population: int
    neuron: int
    signal: str = "membrane"
    sample_period: int = 4


SourceItem = Union[Population, ExternalSpikeSource, BackgroundSpikeSourcePopulation]
Item = Union[SourceItem, Projection, SpikeRecording, CADCRecording, MADCRecording]


class NetworkBuilder:
    """Collects network items; :meth:`done` returns the immutable :class:`Network`."""

    def __init__(self) -> None:
        self._items: list[Item] = []

    def add(self, item: Item) -> int:
        """Add ``item``; returns its descriptor. Rejected items change nothing."""
        n = len(self._items)
        if isinstance(item, (Population, ExternalSpikeSource, BackgroundSpikeSourcePopulation)):
            pass
        elif isinstance(item, Projection):
            pre = self._get(item.pre, "Projection.pre", (Population, ExternalSpikeSource,
                                                          BackgroundSpikeSourcePopulation))
            post = self._get(item.post, "Projection.post", (Population,))
            for name, indices, size in (("pre_indices", item.pre_indices, pre.size),
                                        ("post_indices", item.post_indices, post.size)):
                if indices.size and (indices.min() < 0 or indices.max() >= size):
                    bad = indices.min() if indices.min() < 0 else indices.max()
                    raise GraphValueError(f"Projection.{name} contains {bad}, out of range [0, {size - 1}]")
        elif isinstance(item, (SpikeRecording, CADCRecording, MADCRecording)):
            population = self._get(item.population, f"{type(item).__name__}.population", (Population,))
            indices = {CADCRecording: lambda r: r.neurons, MADCRecording: lambda r: (r.neuron,)}.get(
                type(item), lambda r: ())(item)
            for index in indices:
                if not 0 <= index < population.size:
                    raise GraphValueError(f"{type(item).__name__} neuron {index} is out of range "
                                          f"[0, {population.size - 1}]")
            if isinstance(item, MADCRecording) and any(isinstance(i, MADCRecording) for i in self._items):
                raise GraphValueError("only one MADCRecording per network (the MADC records one neuron)")
        else:
            raise GraphTypeError(f"NetworkBuilder.add takes a network item, got {type(item).__name__}")
        self._items.append(item)
        return n

    def _get(self, descriptor: int, what: str, kinds: tuple[type, ...]) -> Any:
        if not 0 <= descriptor < len(self._items) or not isinstance(self._items[descriptor], kinds):
            raise GraphValueError(f"{what} = {descriptor} does not name an added "
                                  f"{' or '.join(k.__name__ for k in kinds)}")
        return self._items[descriptor]

    def done(self) -> Network:
        """The immutable network of everything added so far."""
        return Network(tuple(self._items))


@attrs.frozen(eq=False)
class Connections:
    """All connections of a network aggregated per (source id, neuron id, receptor), sorted by that key.

    ``weights`` are summed logical weights; ``synapses`` = max(1, ceil(w / 63)) hardware synapses each
    (a listed connection always keeps at least one synapse so its weight can later change in place).
    """

    sources: np.ndarray
    neurons: np.ndarray
    receptors: np.ndarray
    weights: np.ndarray
    synapses: np.ndarray


class Network:
    """An immutable spiking network (see :class:`NetworkBuilder`).

    ``topology_hash`` covers everything routing depends on (items, connection structure and the number
    of hardware synapses per connection); ``weights_hash`` covers the weights. Two networks with equal
    topology hashes route identically up to the synapse weights.
    """

    __slots__ = ("items", "_cache")

    def __init__(self, items: tuple[Item, ...]) -> None:
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "_cache", {})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Network is immutable")

    def descriptors(self, kind: type | tuple[type, ...]) -> list[int]:
        """Descriptors of the items of ``kind``."""
        return [i for i, item in enumerate(self.items) if isinstance(item, kind)]

    @property
    def source_offsets(self) -> dict[int, int]:
        """descriptor of each source item -> its first source id."""
        offsets, n = {}, 0
        for i in self.descriptors((Population, ExternalSpikeSource, BackgroundSpikeSourcePopulation)):
            offsets[i] = n
            n += self.items[i].size  # type: ignore[union-attr]
        return offsets

    @property
    def num_sources(self) -> int:
        """Number of event sources (neurons, external and background sources)."""
        return sum(self.items[i].size for i in self.source_offsets)  # type: ignore[union-attr]

    @property
    def neuron_offsets(self) -> dict[int, int]:
        """descriptor of each population -> its first neuron id."""
        offsets, n = {}, 0
        for i in self.descriptors(Population):
            offsets[i] = n
            n += self.items[i].size  # type: ignore[union-attr]
        return offsets

    @property
    def num_neurons(self) -> int:
        """Number of neurons of all populations."""
        return sum(self.items[i].size for i in self.descriptors(Population))  # type: ignore[union-attr]

    def with_projection_weights(self, weights: dict[int, np.ndarray]) -> Network:
        """A copy whose projections ``descriptor -> new weights`` carry new weights (same connections)."""
        items = list(self.items)
        for descriptor, w in weights.items():
            items[descriptor] = items[descriptor].with_weights(w)  # type: ignore[union-attr]
        return Network(tuple(items))

    def _keyed(self) -> tuple[np.ndarray, np.ndarray]:
        """(key, weight) per listed connection; key = (source * neurons + neuron) * 2 + receptor."""
        sources, neurons = self.source_offsets, self.neuron_offsets
        n_neurons = max(self.num_neurons, 1)
        keys, weights = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for i in self.descriptors(Projection):
            p: Projection = self.items[i]  # type: ignore[assignment]
            src = sources[p.pre] + p.pre_indices
            dst = neurons[p.post] + p.post_indices
            keys.append((src * n_neurons + dst) * 2 + RECEPTORS.index(p.receptor))
            weights.append(p.weights)
        return np.concatenate(keys), np.concatenate(weights)

    def connections(self) -> Connections:
        """The aggregated connections (cached)."""
        result = self._cache.get("connections")
        if result is None:
            keys, weights = self._keyed()
            unique, inverse = np.unique(keys, return_inverse=True)
            summed = np.bincount(inverse, weights=weights, minlength=unique.size).astype(np.int64)
            n_neurons = max(self.num_neurons, 1)
            synapses = np.maximum(1, -(-summed // SYNAPSE_WEIGHT_MAX))
            result = Connections(unique // 2 // n_neurons, unique // 2 % n_neurons, unique % 2, summed, synapses)
            for array in attrs.astuple(result):
                array.flags.writeable = False
            self._cache["connections"] = result
        return result  # type: ignore[no-any-return]

    def _hash(self, with_weights: bool, with_topology: bool) -> str:
        h = hashlib.sha256()
        if with_topology:
            for item in self.items:
                if isinstance(item, Projection):
                    h.update(repr(("Projection", item.pre, item.post, item.receptor)).encode())
                else:
                    h.update(repr(item).encode())
            c = self.connections()
            for array in (c.sources, c.neurons, c.receptors, c.synapses):
                h.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
        if with_weights:
            h.update(np.ascontiguousarray(self.connections().weights, dtype="<i8").tobytes())
        return h.hexdigest()

    @property
    def topology_hash(self) -> str:
        """sha256 of everything but the weights (stable across processes)."""
        if "topology" not in self._cache:
            self._cache["topology"] = self._hash(False, True)
        return self._cache["topology"]  # type: ignore[no-any-return]

    @property
    def weights_hash(self) -> str:
        """sha256 of the aggregated weights."""
        if "weights" not in self._cache:
            self._cache["weights"] = self._hash(True, False)
        return self._cache["weights"]  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Network):
            return NotImplemented
        return self.topology_hash == other.topology_hash and self.weights_hash == other.weights_hash

    def __hash__(self) -> int:
        return hash((self.topology_hash, self.weights_hash))

    def __repr__(self) -> str:
        return (f"<Network: {self.num_neurons} neurons, {self.num_sources} sources, "
                f"{self.connections().weights.size} connections>")
