"""A recorder of register accesses that round-trips through YAML.

:class:`Recorder` keeps ``(coordinate, container)`` pairs in order — a readable, diffable record of an
experiment's configuration that can be saved, reloaded and replayed into a program builder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import yaml

from . import coordinates as co
from .containers import BulkContainer, Container, container_type
from .errors import HalTypeError, HalValueError
from .program import PlaybackProgramBuilder


def coordinate_to_dict(coordinate: co.Coordinate) -> dict[str, Any]:
    """Plain-data form of a coordinate: its type name and its components (or enum)."""
    if coordinate._components:
        return {"type": type(coordinate).__name__, **{n: int(getattr(coordinate, n)) for n, _ in coordinate._components}}
    return {"type": type(coordinate).__name__, "value": int(coordinate)}


def coordinate_from_dict(data: dict[str, Any]) -> co.Coordinate:
    """Inverse of :func:`coordinate_to_dict`."""
    data = dict(data)
    name = data.pop("type", None)
    cls = getattr(co, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, co.Coordinate)):
        raise HalValueError(f"unknown coordinate type {name!r}")
    if "value" in data and not cls._components:
        return cls(data["value"])
    return cls(**data)


class Recorder:
    """Ordered record of ``(coordinate, container)`` writes."""

    def __init__(self) -> None:
        self._entries: list[tuple[co.Coordinate, Container]] = []

    def write(self, coordinate: co.Coordinate, container: Container) -> None:
        """Record a write (checked: the container must be writable at this coordinate type)."""
        container.encode(coordinate)  # validates coordinate type and writability
        self._entries.append((coordinate, container))

    def __iter__(self) -> Iterator[tuple[co.Coordinate, Container]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def apply(self, builder: PlaybackProgramBuilder) -> PlaybackProgramBuilder:
        """Append every recorded write to ``builder``."""
        for coordinate, container in self._entries:
            builder.write(coordinate, container)
        return builder

    def to_list(self) -> list[dict[str, Any]]:
        """Plain-data form."""
        return [
            {"coordinate": coordinate_to_dict(c), "container": type(v).__name__, "value": v.to_dict()}
            for c, v in self._entries
        ]

    def to_yaml(self) -> str:
        """YAML text of every recorded write (bulk arrays as nested lists)."""
        return yaml.safe_dump(self.to_list(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_yaml(cls, text: str) -> Recorder:
        """Inverse of :meth:`to_yaml`."""
        recorder = cls()
        entries = yaml.safe_load(text) or []
        if not isinstance(entries, list):
            raise HalValueError("recorder YAML must be a list of entries")
        for entry in entries:
            try:
                coordinate = coordinate_from_dict(entry["coordinate"])
                kind = container_type(entry["container"])
                value = entry["value"]
            except (KeyError, TypeError) as error:
                raise HalValueError(f"malformed recorder entry {entry!r}: {error}") from None
            if issubclass(kind, BulkContainer):
                container = kind(**{k: np.asarray(v) for k, v in value.items()})
            elif isinstance(value, dict):
                container = kind.from_dict(value)
            else:
                raise HalTypeError(f"recorder entry value must be a mapping, got {type(value).__name__}")
            recorder.write(coordinate, container)
        return recorder
