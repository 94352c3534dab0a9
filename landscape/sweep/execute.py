"""Execute one chunk of initialisations of one resolved config: a thin layer over :func:`landscape.explore`.

The config is resolved into library objects once (:func:`landscape.config.build`); the chunk is
``explore(problem, flow, key=PRNGKey(init.seed), n=count, start=start, ...)``, so initialisation ``i`` uses the
key ``fold_in(PRNGKey(init.seed), i)`` and results do not depend on chunking. Its table and arrays are what the
store writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import pandas as pd

from ..analysis.explore import explore
from ..config import Config, build

__all__ = ["ChunkResult", "run_chunk"]


@dataclass
class ChunkResult:
    """Rows (one per initialisation id), arrays (leading axis = count) and timings (seconds) of one chunk."""

    rows: pd.DataFrame
    arrays: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def run_chunk(cfg: Config, start: int, count: int, *, problem=None, sharding=None) -> ChunkResult:
    """Run initialisations ``start .. start + count - 1`` of ``cfg`` (see the module docstring).

    ``problem`` reuses an already built problem of ``cfg``; ``sharding`` (e.g. a NamedSharding over a 1-D device
    mesh) places the batch axis across devices.
    """
    b = build(cfg, problem=problem)
    res = explore(b.problem, b.flow, key=jax.random.PRNGKey(b.seed), n=count, start=start, init=b.init,
                  polish=b.polish, analyzers=b.analyzers, sharding=sharding)
    return ChunkResult(rows=res.table(), arrays=res.arrays(), timings=dict(res.timings))
