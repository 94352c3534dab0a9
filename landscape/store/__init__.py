"""Results directories: atomic, checksummed chunk files, manifest, checked loading (:mod:`.storage`); the run's
environment record.

The storage layer sits below the sweep runner and the report: both import it, it imports neither.
"""

from .environment import environment
from .storage import (
    KNOWN_ENTRIES,
    Chunk,
    StoreError,
    SweepStore,
    atomic_write,
    load_arrays,
    load_manifest,
    load_point_arrays,
    load_points,
    plan_chunks,
)

__all__ = [
    "Chunk",
    "SweepStore",
    "StoreError",
    "atomic_write",
    "load_points",
    "load_arrays",
    "load_point_arrays",
    "load_manifest",
    "plan_chunks",
    "KNOWN_ENTRIES",
    "environment",
]
