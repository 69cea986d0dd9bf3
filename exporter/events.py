"""What flows from the observer to the recorder: one event per object change or per finished (re)list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubedr.kubeapi import Resource


@dataclass
class Event:
    """ADDED/MODIFIED/DELETED (obj set) or SYNCED (a full list ended: seen holds every listed path)."""

    type: str
    rtype: Resource
    obj: dict[str, Any] | None = None
    received: float = 0.0
    seen: set[str] = field(default_factory=set)
