"""Expand a config's ``[sweep]`` table into grid points, each a validated :class:`~landscape.config.Config`.

A ``[sweep]`` table has two optional keys, both mapping dotted config keys (``"section.key"``) to lists of values:

- ``grid``: the cartesian product of its lists (the last key varies fastest);
- ``zip``: equal-length lists taken together, entry by entry.

With both, the points are the product of the grid with the zipped block. A config without ``[sweep]`` (or with
an empty one) is a sweep of one point.

Seeds: the initialisation seed of every point is derived from the base ``init.seed`` and the point's key values,

    seed(point) = int(sha256(json([base_seed, sorted (key, value) pairs]))[:8 bytes]) mod 2^31,

so it does not depend on the point's position in the grid (adding values to a list leaves the other points'
seeds, and so their results, unchanged). A sweep of one keeps the base seed, and a grid that sweeps ``init.seed``
itself uses the given seeds. Every point is validated before anything runs; errors are one line
(:class:`~landscape.config.ConfigError`) naming the key and the point.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass

from .config import SECTIONS, Config, ConfigError, config_from_dict, config_to_dict

__all__ = ["GridPoint", "expand_sweep", "derive_seed", "resolved_dict", "config_hash", "point_label"]

SWEEP_KEYS = ("grid", "zip")


@dataclass(frozen=True)
class GridPoint:
    """One point of a sweep: its position, the swept values (dotted key -> value) and its resolved config."""

    index: int
    values: dict
    seed: int
    config: Config

    @property
    def name(self) -> str:
        """A file-name-safe label, ``p0000``, ``p0001``, ..."""
        return f"p{self.index:04d}"

    @property
    def label(self) -> str:
        return point_label(self.values)


def point_label(values: dict) -> str:
    """``student.width=6, init.scale=0.01`` (or ``base`` for a sweep of one)."""
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "base"


def derive_seed(base_seed: int, values: dict) -> int:
    """The init seed of a grid point: a hash of the base seed and the point's sorted key values (module docstring)."""
    if not values:
        return int(base_seed)
    text = json.dumps([int(base_seed), sorted((k, _jsonable(v)) for k, v in values.items())], sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") % (2**31)


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def _check_key(key, where: str) -> tuple[str, str]:
    if not isinstance(key, str) or key.count(".") != 1:
        raise ConfigError(f"sweep.{where} key {key!r} must look like \"section.key\", e.g. \"student.width\"")
    section, name = key.split(".")
    if section not in SECTIONS:
        raise ConfigError(
            f"sweep.{where} key {key!r}: unknown section [{section}]; valid sections: {', '.join(SECTIONS)}"
        )
    fields = [f.name for f in dataclasses.fields(SECTIONS[section])]
    if name not in fields:
        raise ConfigError(f"sweep.{where} key {key!r}: unknown key {name!r} in [{section}]; valid: {', '.join(fields)}")
    return section, name


def _check_values(key: str, values, where: str) -> list:
    if not isinstance(values, list):
        raise ConfigError(f"sweep.{where}.{key!r} must be a list of values, e.g. [6, 7, 8]; got {values!r}")
    if not values:
        raise ConfigError(f"sweep.{where}.{key!r} is an empty list; give at least one value or remove the key")
    seen = []
    for v in values:
        if v in seen and where == "grid":
            raise ConfigError(f"sweep.grid.{key!r} lists {v!r} twice; each value may appear once")
        seen.append(v)
    return values


def sweep_axes(sweep: dict) -> tuple[dict, dict]:
    """Validate a ``[sweep]`` table and return its (grid, zip) dicts of dotted key -> list of values."""
    if not isinstance(sweep, dict):
        raise ConfigError(f"[sweep] must be a table with keys grid and/or zip, got {sweep!r}")
    unknown = sorted(set(sweep) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key sweep.{unknown[0]}; [sweep] takes grid = {{...}} and/or zip = {{...}}")
    axes = {}
    for where in SWEEP_KEYS:
        table = sweep.get(where, {})
        if not isinstance(table, dict):
            raise ConfigError(f"sweep.{where} must be a table of \"section.key\" = [values], got {table!r}")
        axes[where] = table = dict(table)
        if "grid" in sweep and where == "grid" and not table:
            raise ConfigError("sweep.grid is empty; give at least one \"section.key\" = [values] or remove it")
        if "zip" in sweep and where == "zip" and not table:
            raise ConfigError("sweep.zip is empty; give at least one \"section.key\" = [values] or remove it")
        for key, values in list(table.items()):
            section, name = _check_key(key, where)
            table[key] = [_normalise(section, name, v) for v in _check_values(key, values, where)]
    grid, zipped = axes["grid"], axes["zip"]
    both = sorted(set(grid) & set(zipped))
    if both:
        raise ConfigError(f"sweep key {both[0]!r} appears in both sweep.grid and sweep.zip; keep it in one")
    lengths = {k: len(v) for k, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise ConfigError(f"sweep.zip lists must have equal lengths, got {desc}")
    return grid, zipped


def _normalise(section: str, name: str, value):
    """Integers given for float fields become floats, so 1 and 1.0 name the same point (and seed)."""
    ftype = next(f.type for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    if ftype in ("float", float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _set(raw: dict, key: str, value) -> None:
    section, name = key.split(".")
    raw.setdefault(section, {})[name] = value


def expand_sweep(raw: dict) -> list[GridPoint]:
    """All grid points of a parsed config dict (TOML dict with overrides applied), each validated.

    Raises :class:`ConfigError` (one line) for unknown keys, empty grids, unequal zip lengths, or a point whose
    resolved config is invalid (the message names the point).
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a TOML table, got {raw!r}")
    grid, zipped = sweep_axes(raw.get("sweep", {}))
    base = {k: v for k, v in raw.items() if k != "sweep"}
    base_seed = base.get("init", {}).get("seed", _default("init", "seed"))
    seed_ok = isinstance(base_seed, int) and not isinstance(base_seed, bool)
    grid_combos = list(itertools.product(*grid.values())) if grid else [()]
    zip_rows = list(zip(*zipped.values(), strict=True)) if zipped else [()]
    points = []
    for combo in grid_combos:
        for zrow in zip_rows:
            values = dict(zip(grid, combo, strict=True))
            values.update(zip(zipped, zrow, strict=True))
            point_raw = copy.deepcopy(base)
            for key, v in values.items():
                _set(point_raw, key, v)
            if "init.seed" not in values and seed_ok:  # otherwise config_from_dict checks the given seed
                _set(point_raw, "init.seed", derive_seed(base_seed, values))
            try:
                cfg = config_from_dict(point_raw)
            except ConfigError as e:
                if not values:
                    raise
                raise ConfigError(f"sweep point {point_label(values)}: {e}") from None
            points.append(GridPoint(index=len(points), values=values, seed=cfg.init.seed, config=cfg))
    return points


def _default(section: str, name: str):
    f = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    return f.default


def resolved_dict(raw: dict, points: list[GridPoint]) -> dict:
    """The resolved base config (every default filled in) plus the ``[sweep]`` table, as a plain dict.

    Swept keys take the first point's values and ``init.seed`` is the base seed; expanding this dict again gives the
    same points, so it is what ``DIR/config.toml`` holds and what the config hash covers.
    """
    d = config_to_dict(points[0].config)
    d.pop("sweep", None)
    d["init"]["seed"] = raw.get("init", {}).get("seed", _default("init", "seed"))
    grid, zipped = sweep_axes(raw.get("sweep", {}))
    sweep = {}
    if grid:
        sweep["grid"] = grid
    if zipped:
        sweep["zip"] = zipped
    if sweep:
        d["sweep"] = sweep
    return d


def config_hash(resolved: dict) -> str:
    """sha256 of the canonical JSON of a resolved config dict (first 16 hex digits)."""
    text = json.dumps(resolved, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
