"""The results directory of a sweep: manifest, per-chunk Parquet rows and ``.npz`` arrays, all written atomically.

Layout (one directory per sweep; a config without ``[sweep]`` is a sweep of one)::

    DIR/config.toml        resolved config (base + [sweep] table), written first
    DIR/manifest.json      config hash, grid points (values, seeds, counts), chunk size, status per chunk, versions
    DIR/points.parquet/    Parquet dataset: one file per finished chunk (pandas.read_parquet reads it as one table)
    DIR/arrays/            one .npz per finished chunk; pNNNN.npz per grid point once a multi-point sweep completes
    DIR/arrays.npz         consolidated arrays of a sweep of one, once it completes
    DIR/summary.json       written when everything is done
    DIR/figures/           figures

Every file is written to a hidden temporary name in its final directory, flushed, fsync'ed and renamed with
:func:`os.replace`, so a reader (or a run killed with SIGKILL) sees either the whole file or none of it. The chunk
files are the truth about what is done: a chunk is done when its Parquet file exists (written after its ``.npz``);
the manifest's per-chunk status is refreshed from them on every open. One run at a time holds ``DIR/.lock``.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import ConfigError, config_to_toml

__all__ = [
    "Chunk",
    "SweepStore",
    "atomic_write",
    "load_points",
    "load_arrays",
    "load_point_arrays",
    "load_manifest",
    "plan_chunks",
    "KNOWN_ENTRIES",
]

FORMAT = "landscape-sweep/1"
KNOWN_ENTRIES = ("config.toml", "manifest.json", "points.parquet", "arrays", "arrays.npz", "summary.json", "figures",
                 ".lock")


@dataclass(frozen=True)
class Chunk:
    """Initialisation ids ``start .. start + count - 1`` of grid point ``point``; ``run_count >= count`` are computed.

    ``run_count`` is the sweep's chunk size: a short last chunk is padded with the next ids (whose results are
    dropped), so every chunk of a shape group has the same batch size and reuses one compilation.
    """

    point: int
    index: int
    start: int
    count: int
    run_count: int

    @property
    def name(self) -> str:
        return f"p{self.point:04d}-c{self.index:06d}"


def plan_chunks(counts: list[int], chunk_size: int) -> list[Chunk]:
    """Chunks of ``chunk_size`` ids for grid points with ``counts[i]`` initialisations each."""
    chunks = []
    for p, n in enumerate(counts):
        for c, start in enumerate(range(0, n, chunk_size)):
            chunks.append(Chunk(p, c, start, min(chunk_size, n - start), chunk_size))
    return chunks


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: hidden temp file in the same directory, fsync, os.replace."""
    path = Path(path)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(df, preserve_index=False)
    # a column that is all None in this chunk would get the null type and clash with other chunks' strings
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
    table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _column_value(v):
    """Grid values as table cells: scalars as they are, lists as JSON text."""
    return json.dumps(v) if isinstance(v, list | tuple | dict) else v


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and prefix == "":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _first_difference(old: dict, new: dict) -> str:
    a, b = _flatten(old), _flatten(new)
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<unset>") != b.get(k, "<unset>"):
            return f"{k}: {a.get(k, '<unset>')!r} there, {b.get(k, '<unset>')!r} now"
    return "no key differs, but the hash does"


def load_manifest(out_dir) -> dict:
    """The manifest of a results directory (ConfigError if there is none)."""
    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        raise ConfigError(f"{out_dir} is not a results directory (no manifest.json); run 'landscape run' first")
    return json.loads(path.read_text())


def load_points(out_dir) -> pd.DataFrame:
    """All finished rows of a results directory as one table, sorted by (grid_point, id)."""
    path = Path(out_dir) / "points.parquet"
    if not Path(out_dir).is_dir():
        raise ConfigError(f"results directory {str(out_dir)!r} not found; give the --out of a 'landscape run'")
    if not path.exists() or (path.is_dir() and not any(path.glob("*.parquet"))):
        raise ConfigError(f"{out_dir} holds no finished chunks yet (no {path}); run or resume 'landscape run' first")
    df = pd.read_parquet(path)
    keys = [k for k in ("grid_point", "id") if k in df]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df


def load_arrays(out_dir, point: int = 0) -> dict:
    """Arrays of one grid point (leading axis = initialisation, sorted by id): consolidated file or chunk files."""
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    single = len(manifest["points"]) == 1
    consolidated = out_dir / "arrays.npz" if single else out_dir / "arrays" / f"p{point:04d}.npz"
    if consolidated.is_file():
        with np.load(consolidated) as z:
            return {k: z[k] for k in z.files}
    files = sorted((out_dir / "arrays").glob(f"p{point:04d}-c*.npz"))
    if not files:
        raise ConfigError(f"{out_dir}: no arrays for grid point {point} yet")
    parts = []
    for f in files:
        with np.load(f) as z:
            parts.append({k: z[k] for k in z.files})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def load_point_arrays(out_dir, point_id: int, *, grid_point: int | None = None) -> dict:
    """Arrays of one initialisation ``point_id`` of grid point ``grid_point`` (default 0), without the leading axis.

    Reads only the chunk file that holds the id (or the consolidated file when chunk files are gone).
    """
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    gp = 0 if grid_point is None else int(grid_point)
    if not 0 <= gp < len(manifest["points"]):
        raise ConfigError(f"grid point {gp} does not exist; {out_dir} has grid points 0..{len(manifest['points']) - 1}")
    for c in manifest["chunks"]:
        if c["point"] == gp and c["start"] <= point_id < c["start"] + c["count"]:
            f = out_dir / "arrays" / f"{c['name']}.npz"
            if f.is_file():
                with np.load(f) as z:
                    return {k: z[k][point_id - c["start"]] if z[k].ndim else z[k] for k in z.files}
            break
    else:
        raise ConfigError(f"initialisation id {point_id} does not exist in grid point {gp} of {out_dir}")
    arrays = load_arrays(out_dir, gp)
    where = np.flatnonzero(arrays["id"] == point_id) if "id" in arrays else []
    if not len(where):
        raise ConfigError(f"initialisation id {point_id} of grid point {gp} is not finished yet; resume the run")
    return {k: v[where[0]] for k, v in arrays.items()}


class SweepStore:
    """Create or resume a results directory; write chunks and the manifest. See the module docstring."""

    MANIFEST_INTERVAL_S = 2.0

    def __init__(self, out_dir, manifest: dict, lock_fd: int):
        self.dir = Path(out_dir)
        self.manifest = manifest
        self._lock_fd = lock_fd
        self._last_manifest = 0.0
        self._chunk_status = {c["name"]: c for c in manifest["chunks"]}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        out_dir,
        *,
        resolved: dict,
        cfg_hash: str,
        points: list,
        chunk_size: int,
        force: bool = False,
        info: dict | None = None,
    ) -> SweepStore:
        """Create ``out_dir`` for this sweep, or resume it if it holds the same config (same hash).

        A directory holding another config is refused with one line unless ``force`` (which removes only the
        entries this module writes). A non-empty directory that is not a results directory is refused.
        """
        out_dir = Path(out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"--out {out_dir} is a file; give a directory path")
        out_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = cls._lock(out_dir)
        try:
            manifest_path = out_dir / "manifest.json"
            if force:
                cls._clear(out_dir)
            elif manifest_path.is_file():
                old = json.loads(manifest_path.read_text())
                if old.get("config_hash") != cfg_hash:
                    why = _first_difference(cls._old_config(out_dir), resolved)
                    raise ConfigError(
                        f"{out_dir} holds results of a different config ({why}); use another --out, or --force to "
                        "delete them and start over"
                    )
                store = cls(out_dir, old, lock_fd)
                if old["chunk_size"] != chunk_size:
                    store.note = (f"resuming with the directory's chunk size {old['chunk_size']} (requested "
                                  f"{chunk_size})")
                store._resume(info)
                return store
            else:
                foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in KNOWN_ENTRIES)
                if foreign:
                    raise ConfigError(
                        f"{out_dir} exists and is not a landscape results directory (it holds {foreign[0]!r}); "
                        "choose another --out"
                    )
                cls._clear(out_dir)  # leftovers of a run killed before its manifest was written
            store = cls(out_dir, cls._new_manifest(resolved, cfg_hash, points, chunk_size, info), lock_fd)
            atomic_write(out_dir / "config.toml", config_to_toml(resolved).encode())
            (out_dir / "points.parquet").mkdir()
            (out_dir / "arrays").mkdir()
            store.write_manifest()
            return store
        except BaseException:
            os.close(lock_fd)
            raise

    note: str = ""

    @staticmethod
    def _lock(out_dir: Path) -> int:
        fd = os.open(out_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            msg = f"{out_dir} is in use by another 'landscape run'; wait for it or use another --out"
            raise ConfigError(msg) from None
        return fd

    @staticmethod
    def _old_config(out_dir: Path) -> dict:
        try:
            return tomllib.loads((out_dir / "config.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    @staticmethod
    def _clear(out_dir: Path) -> None:
        for name in KNOWN_ENTRIES:
            p = out_dir / name
            if name == ".lock":
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()

    @staticmethod
    def _new_manifest(resolved: dict, cfg_hash: str, points: list, chunk_size: int, info: dict | None) -> dict:
        counts = [p.config.init.count for p in points]
        chunks = plan_chunks(counts, chunk_size)
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        grid_keys = list(points[0].values) if points else []
        return {
            "format": FORMAT,
            "config_hash": cfg_hash,
            "config_file": "config.toml",
            "created": now,
            "status": "running",
            "grid_keys": grid_keys,
            "points": [
                {"index": p.index, "name": p.name, "values": p.values, "seed": p.seed, "count": n}
                for p, n in zip(points, counts, strict=True)
            ],
            "n_trajectories": int(sum(counts)),
            "chunk_size": chunk_size,
            "chunks": [
                {"name": c.name, "point": c.point, "index": c.index, "start": c.start, "count": c.count,
                 "status": "pending"}
                for c in chunks
            ],
            "runs": [{"started": now, **(info or {})}],
        }

    def _resume(self, info: dict | None) -> None:
        for tmp in [*self.dir.glob(".tmp-*"), *self.dir.glob("*/.tmp-*")]:
            tmp.unlink(missing_ok=True)  # partial writes of a killed run
        (self.dir / "points.parquet").mkdir(exist_ok=True)
        (self.dir / "arrays").mkdir(exist_ok=True)
        for c in self.manifest["chunks"]:
            c["status"] = "done" if self._chunk_done(c["name"]) else "pending"
        if any(c["status"] == "pending" for c in self.manifest["chunks"]):
            self.manifest["status"] = "running"
        self.manifest["runs"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(info or {})})
        self.write_manifest()

    # ------------------------------------------------------------------ chunks
    def _chunk_done(self, name: str) -> bool:
        return (self.dir / "points.parquet" / f"{name}.parquet").is_file() and (
            self.dir / "arrays" / f"{name}.npz"
        ).is_file()

    def chunks(self) -> list[Chunk]:
        """Every chunk of the sweep (done or not)."""
        size = self.manifest["chunk_size"]
        return [Chunk(c["point"], c["index"], c["start"], c["count"], size) for c in self.manifest["chunks"]]

    def pending(self) -> list[Chunk]:
        """Chunks not yet written."""
        return [c for c in self.chunks() if self._chunk_status[c.name]["status"] != "done"]

    @property
    def chunk_size(self) -> int:
        return self.manifest["chunk_size"]

    def write_chunk(self, chunk: Chunk, rows: pd.DataFrame, arrays: dict) -> None:
        """Store one finished chunk: its ``.npz`` then its Parquet rows (with grid columns), then the manifest.

        ``rows`` and ``arrays`` may hold ``chunk.run_count`` entries; only the first ``chunk.count`` are kept.
        """
        n, m = chunk.count, chunk.run_count
        rows = rows.iloc[:n].reset_index(drop=True).copy()
        if len(rows) != n:
            raise ValueError(f"chunk {chunk.name}: expected {n} rows, got {len(rows)}")
        arrays = {k: (np.asarray(v)[:n] if np.ndim(v) and np.shape(v)[0] == m else np.asarray(v))
                  for k, v in arrays.items()}
        point = self.manifest["points"][chunk.point]
        cols = {"grid_point": np.full(n, chunk.point, np.int64)}
        for key, v in point["values"].items():
            cols[key] = [_column_value(v)] * n
        if "init.seed" not in point["values"]:
            cols["init.seed"] = np.full(n, point["seed"], np.int64)
        front = pd.DataFrame(cols)
        rows = pd.concat([front, rows.drop(columns=[c for c in front if c in rows])], axis=1)
        atomic_write(self.dir / "arrays" / f"{chunk.name}.npz", _npz_bytes(arrays))
        atomic_write(self.dir / "points.parquet" / f"{chunk.name}.parquet", _parquet_bytes(rows))
        self._chunk_status[chunk.name]["status"] = "done"
        self.write_manifest(throttle=True)

    # ------------------------------------------------------------------ manifest and completion
    def write_manifest(self, *, throttle: bool = False) -> None:
        """Rewrite manifest.json atomically (at most every MANIFEST_INTERVAL_S seconds when ``throttle``)."""
        now = time.monotonic()
        if throttle and now - self._last_manifest < self.MANIFEST_INTERVAL_S:
            return
        self._last_manifest = now
        self.manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.manifest["n_done"] = sum(c["status"] == "done" for c in self.manifest["chunks"])
        atomic_write(self.dir / "manifest.json", (json.dumps(self.manifest, indent=1) + "\n").encode())

    @property
    def complete(self) -> bool:
        return all(c["status"] == "done" for c in self.manifest["chunks"])

    def consolidate(self) -> list[Path]:
        """Concatenate chunk arrays per grid point: DIR/arrays.npz (sweep of one) or DIR/arrays/pNNNN.npz."""
        written = []
        single = len(self.manifest["points"]) == 1
        for p in self.manifest["points"]:
            target = self.dir / "arrays.npz" if single else self.dir / "arrays" / f"{p['name']}.npz"
            if target.is_file():
                continue
            arrays = load_arrays(self.dir, p["index"])
            atomic_write(target, _npz_bytes(arrays))
            written.append(target)
        return written

    def finish(self) -> None:
        """Mark the sweep complete in the manifest."""
        self.manifest["status"] = "complete" if self.complete else "running"
        self.manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.write_manifest()

    def close(self) -> None:
        """Write the manifest and release the directory lock."""
        if self._lock_fd is not None:
            self.write_manifest()
            os.close(self._lock_fd)
            self._lock_fd = None
