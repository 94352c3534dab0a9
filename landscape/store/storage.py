"""The results directory of a sweep: manifest, per-chunk Parquet rows and ``.npz`` arrays, all written atomically.

Layout (one directory per sweep; a config without ``[sweep]`` is a sweep of one)::

    DIR/config.toml        resolved config (base + [sweep] table), written first
    DIR/manifest.json      config hash, grid points (values, seeds, counts), chunk size, status, size and sha256 of
                           every chunk file, versions
    DIR/points.parquet/    Parquet dataset: one file per finished chunk (pandas.read_parquet reads it as one table)
    DIR/arrays/            one .npz per finished chunk; pNNNN.npz per grid point once a multi-point sweep completes
    DIR/arrays.npz         consolidated arrays of a sweep of one, once it completes
    DIR/summary.json       written when everything is done
    DIR/figures/           figures
    DIR/damaged/           files found damaged (or not part of the sweep) on resume, moved aside, never deleted

Every file is written to a hidden temporary name in its final directory, flushed, fsync'ed and renamed with
:func:`os.replace`, so a reader (or a run killed with SIGKILL) sees either the whole file or none of it. The chunk
files are the truth about what is done: a chunk is done when its Parquet file exists (written after its ``.npz``)
and both files check out; the manifest's per-chunk status is refreshed from them on every open.

Integrity: the manifest records the size and sha256 of both files of every chunk, and of the consolidated files,
when they are written (the manifest itself is rewritten at most every few seconds, so a run killed with SIGKILL can
leave the last chunks unrecorded: those are checked by reading them whole, with Parquet page checksums and the zip
CRCs of the ``.npz``, and recorded then). Opening a directory to resume checks every file; a damaged or missing
chunk is moved to ``DIR/damaged/`` and recomputed, with one warning line (:attr:`SweepStore.warnings`). The readers
(:func:`load_points`, :func:`load_arrays`, :func:`load_point_arrays`) check what they read and raise
:class:`StoreError` (one line naming the file and the fix) on a damaged file. A damaged ``manifest.json`` is rebuilt
on resume from ``config.toml`` and the chunk files (each Parquet chunk carries its config hash and place in its
metadata). One run at a time holds ``DIR/.lock``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
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
from ..grid import config_hash as _config_hash

__all__ = [
    "Chunk",
    "SweepStore",
    "StoreError",
    "atomic_write",
    "load_points",
    "load_arrays",
    "load_manifest",
    "load_point_arrays",
    "plan_chunks",
    "KNOWN_ENTRIES",
]

FORMAT = "landscape-sweep/1"
KNOWN_ENTRIES = ("config.toml", "manifest.json", "points.parquet", "arrays", "arrays.npz", "summary.json", "figures",
                 "damaged", ".lock")
META_KEY = b"landscape"
FIX = "re-run 'landscape run' with the same config and --out to recompute it"


class StoreError(ConfigError):
    """A damaged, incomplete or unwritable results directory: one line naming the file and the fix.

    A :class:`~landscape.config.ConfigError` (so a ``ValueError``): the CLI prints it as ``error: ...``, exit code 2.
    """


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
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _unwritable(out_dir, e: OSError) -> StoreError:
    why = e.strerror or str(e) or type(e).__name__
    if e.filename:
        why += f": {e.filename}"
    hint = "free some space or choose another --out" if e.errno in (errno.ENOSPC, errno.EDQUOT) else \
        "choose another --out"
    return StoreError(f"cannot write results to {out_dir} ({why}); {hint}")


# ---------------------------------------------------------------------- integrity
def _digest(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _file_digest(path: Path) -> dict:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return {"size": size, "sha256": h.hexdigest()}


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {text[:120]}{'...' if len(text) > 120 else ''}"


def _record_problem(path: Path, record: dict) -> str | None:
    """Why the file at ``path`` is not the one recorded (size and sha256), or None."""
    try:
        size = path.stat().st_size
        if size != record["size"]:
            return (f"truncated ({size} of {record['size']} bytes)" if size < record["size"]
                    else f"damaged ({size} bytes, {record['size']} were written)")
        if _file_digest(path)["sha256"] != record["sha256"]:
            return "damaged (checksum mismatch)"
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({_short(e)})"
    return None


def _parquet_meta(path: Path) -> dict | None:
    """The landscape metadata a chunk's Parquet file carries (None if absent or unreadable)."""
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[META_KEY]) if META_KEY in meta else None
    except Exception:  # noqa: BLE001  (any damage: no metadata)
        return None


def _read_parquet_whole(path: Path, ids: np.ndarray | None = None, cfg_hash: str | None = None) -> pa.Table:
    """Read a Parquet file whole (page checksums verified); ValueError naming the problem if it does not check out."""
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except FileNotFoundError:
        raise ValueError("missing") from None
    except Exception as e:  # noqa: BLE001  (Arrow raises many kinds)
        raise ValueError(f"unreadable ({_short(e)})") from None
    meta = (table.schema.metadata or {}).get(META_KEY)
    if meta is not None and cfg_hash is not None:
        try:
            if json.loads(meta).get("config_hash") != cfg_hash:
                raise ValueError("from another config")
        except json.JSONDecodeError:
            raise ValueError("damaged (bad metadata)") from None
    if ids is not None:
        if table.num_rows != len(ids):
            raise ValueError(f"damaged ({table.num_rows} rows, {len(ids)} expected)")
        if "id" in table.column_names and not np.array_equal(table.column("id").to_numpy(), ids):
            raise ValueError("damaged (not the chunk's ids)")
    return table


def _read_npz_whole(path: Path, ids: np.ndarray | None = None) -> dict:
    """Read a ``.npz`` whole (zip CRCs verified); ValueError naming the problem if it does not check out."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ValueError("missing") from None
    except Exception as e:  # noqa: BLE001  (zipfile, numpy and OS errors)
        raise ValueError(f"unreadable ({_short(e)})") from None
    if ids is not None and "id" in arrays and not np.array_equal(arrays["id"], ids):
        raise ValueError("damaged (not the expected ids)")
    return arrays


def _ids(entry: dict) -> np.ndarray:
    return np.arange(entry["start"], entry["start"] + entry["count"])


def _chunk_paths(out_dir: Path, name: str) -> dict[str, Path]:
    return {"npz": out_dir / "arrays" / f"{name}.npz", "parquet": out_dir / "points.parquet" / f"{name}.parquet"}


def _rel(out_dir: Path, path: Path) -> str:
    try:
        return str(path.relative_to(out_dir))
    except ValueError:
        return str(path)


def _check_chunk_file(out_dir: Path, entry: dict, kind: str, cfg_hash: str | None) -> tuple[str | None, dict | None]:
    """(problem or None, digest when freshly checked) of one file (``kind`` "npz" or "parquet") of a chunk."""
    path = _chunk_paths(out_dir, entry["name"])[kind]
    record = (entry.get("files") or {}).get(kind)
    if record:
        return _record_problem(path, record), None
    try:
        if kind == "parquet":
            _read_parquet_whole(path, _ids(entry), cfg_hash)
        else:
            _read_npz_whole(path, _ids(entry))
        return None, _file_digest(path)
    except ValueError as e:
        return str(e), None
    except OSError as e:
        return f"unreadable ({_short(e)})", None


def _consolidated_rel(manifest: dict, point: dict) -> str:
    return "arrays.npz" if len(manifest["points"]) == 1 else f"arrays/{point['name']}.npz"


# ---------------------------------------------------------------------- writing helpers
def _parquet_bytes(df: pd.DataFrame, meta: dict | None = None) -> bytes:
    table = pa.Table.from_pandas(df, preserve_index=False)
    # a column that is all None in this chunk would get the null type and clash with other chunks' strings
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
    metadata = dict(table.schema.metadata or {})
    if meta is not None:
        metadata[META_KEY] = json.dumps(meta).encode()
    table = table.cast(pa.schema(fields, metadata=metadata))
    buf = io.BytesIO()
    pq.write_table(table, buf, write_page_checksum=True)
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


# ---------------------------------------------------------------------- reading
def _manifest_problem(m) -> str | None:
    """Why a parsed manifest is not a usable one, or None."""
    if not isinstance(m, dict):
        return "not a JSON object"
    if not str(m.get("format", "")).startswith("landscape-sweep/"):
        return f"unknown format {m.get('format')!r}"
    for key, typ in (("config_hash", str), ("points", list), ("chunk_size", int), ("chunks", list), ("runs", list),
                     ("grid_keys", list)):
        if not isinstance(m.get(key), typ):
            return f"{key!r} missing or not a {typ.__name__}"
    for p in m["points"]:
        if not isinstance(p, dict) or not {"index", "name", "values", "seed", "count"} <= set(p):
            return "a grid point entry is incomplete"
    for c in m["chunks"]:
        if not isinstance(c, dict) or not {"name", "point", "index", "start", "count", "status"} <= set(c):
            return "a chunk entry is incomplete"
    return None


def _read_manifest(out_dir: Path) -> dict:
    """The parsed manifest; ValueError naming the damage (FileNotFoundError if there is none)."""
    path = Path(out_dir) / "manifest.json"
    try:
        text = path.read_bytes().decode()
        m = json.loads(text)
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not valid JSON: {_short(e)}") from None
    why = _manifest_problem(m)
    if why:
        raise ValueError(why)
    return m


def load_manifest(out_dir) -> dict:
    """The manifest of a results directory (ConfigError if there is none, StoreError if it is damaged)."""
    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        raise ConfigError(f"{out_dir} is not a results directory (no manifest.json); run 'landscape run' first")
    try:
        return _read_manifest(Path(out_dir))
    except ValueError as e:
        raise StoreError(f"{path} is damaged ({e}); re-run 'landscape run' with the same config and --out to "
                         "rebuild it from the chunk files") from None


def _damaged(out_dir: Path, path: Path, why: str) -> StoreError:
    return StoreError(f"{out_dir / _rel(out_dir, path)} is {why}; {FIX}")


def load_points(out_dir) -> pd.DataFrame:
    """All finished rows of a results directory as one table, sorted by (grid_point, id).

    Every chunk file is checked first (against the manifest's size and sha256, or read whole where the manifest has
    no record yet): a damaged one raises :class:`StoreError`, never a partial or wrong table.
    """
    out_dir = Path(out_dir)
    path = out_dir / "points.parquet"
    if not out_dir.is_dir():
        raise ConfigError(f"results directory {str(out_dir)!r} not found; give the --out of a 'landscape run'")
    files = sorted(path.glob("*.parquet")) if path.is_dir() else []
    if not path.exists() or (path.is_dir() and not files):
        raise ConfigError(f"{out_dir} holds no finished chunks yet (no {path}); run or resume 'landscape run' first")
    manifest = load_manifest(out_dir) if (out_dir / "manifest.json").exists() else None
    entries = {c["name"]: c for c in manifest["chunks"]} if manifest else {}
    cfg_hash = manifest["config_hash"] if manifest else None
    present = {f.stem for f in files}
    for name, c in entries.items():
        if name not in present and c.get("status") == "done" and (c.get("files") or {}).get("parquet"):
            raise _damaged(out_dir, _chunk_paths(out_dir, name)["parquet"], "missing")
    for f in files:
        entry = entries.get(f.stem)
        if entry is not None:
            why, _ = _check_chunk_file(out_dir, entry, "parquet", cfg_hash)
        else:
            try:
                _read_parquet_whole(f, None, cfg_hash)
                why = None
            except ValueError as e:
                why = str(e)
        if why:
            raise _damaged(out_dir, f, why)
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001  (a file changed under us, or Arrow cannot merge the chunks)
        raise StoreError(f"cannot read {path} ({_short(e)}); {FIX}") from None
    keys = [k for k in ("grid_point", "id") if k in df]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df


def _read_chunk_npz(out_dir: Path, entry: dict, cfg_hash: str | None = None) -> dict:
    """The arrays of one chunk, checked (StoreError if damaged)."""
    path = _chunk_paths(out_dir, entry["name"])["npz"]
    record = (entry.get("files") or {}).get("npz")
    if record:
        why = _record_problem(path, record)
        if why:
            raise _damaged(out_dir, path, why)
    try:
        return _read_npz_whole(path, _ids(entry))
    except ValueError as e:
        raise _damaged(out_dir, path, str(e)) from None


def _load_arrays(out_dir: Path, manifest: dict, point: int, *, consolidated: bool = True) -> dict:
    if not 0 <= point < len(manifest["points"]):
        raise ConfigError(f"grid point {point} does not exist; {out_dir} has grid points "
                          f"0..{len(manifest['points']) - 1}")
    p = manifest["points"][point]
    entries = sorted((c for c in manifest["chunks"] if c["point"] == point), key=lambda c: c["index"])
    rel = _consolidated_rel(manifest, p)
    target = out_dir / rel
    have = [c for c in entries if _chunk_paths(out_dir, c["name"])["npz"].is_file()]
    have_names = {c["name"] for c in have}
    if consolidated and target.is_file():
        record = (manifest.get("consolidated") or {}).get(rel)
        why = _record_problem(target, record) if record else None
        if why is None:
            try:
                return _read_npz_whole(target, np.arange(p["count"]))
            except ValueError as e:
                why = str(e)
        if len(have) < len(entries):  # damaged, and the chunk files it was built from are not all there
            raise StoreError(f"{target} is {why} and some chunk files it was built from are gone; {FIX}")
        # damaged, but every chunk file is there: read those (checked) instead
    for c in entries:
        if c["name"] not in have_names and c.get("status") == "done" and (c.get("files") or {}).get("npz"):
            raise _damaged(out_dir, _chunk_paths(out_dir, c["name"])["npz"], "missing")
    if not have:
        raise ConfigError(f"{out_dir}: no arrays for grid point {point} yet")
    parts = [_read_chunk_npz(out_dir, c, manifest["config_hash"]) for c in have]
    return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}


def load_arrays(out_dir, point: int = 0) -> dict:
    """Arrays of one grid point (leading axis = initialisation, sorted by id): consolidated file or chunk files.

    What is read is checked first (StoreError if damaged); a damaged consolidated file whose chunk files are all
    still there is bypassed (the chunk files are read instead).
    """
    out_dir = Path(out_dir)
    return _load_arrays(out_dir, load_manifest(out_dir), int(point))


def load_point_arrays(out_dir, point_id: int, *, grid_point: int | None = None) -> dict:
    """Arrays of one initialisation ``point_id`` of grid point ``grid_point`` (default 0), without the leading axis.

    Reads only the chunk file that holds the id (or the consolidated file when chunk files are gone); checked first
    (StoreError if damaged).
    """
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    gp = 0 if grid_point is None else int(grid_point)
    if not 0 <= gp < len(manifest["points"]):
        raise ConfigError(f"grid point {gp} does not exist; {out_dir} has grid points 0..{len(manifest['points']) - 1}")
    for c in manifest["chunks"]:
        if c["point"] == gp and c["start"] <= point_id < c["start"] + c["count"]:
            if _chunk_paths(out_dir, c["name"])["npz"].is_file():
                arrays = _read_chunk_npz(out_dir, c, manifest["config_hash"])
                return {k: v[point_id - c["start"]] if v.ndim else v for k, v in arrays.items()}
            break
    else:
        raise ConfigError(f"initialisation id {point_id} does not exist in grid point {gp} of {out_dir}")
    arrays = _load_arrays(out_dir, manifest, gp)
    where = np.flatnonzero(arrays["id"] == point_id) if "id" in arrays else []
    if not len(where):
        raise ConfigError(f"initialisation id {point_id} of grid point {gp} is not finished yet; resume the run")
    return {k: v[where[0]] for k, v in arrays.items()}


# ---------------------------------------------------------------------- the store
class SweepStore:
    """Create or resume a results directory; write chunks and the manifest. See the module docstring."""

    MANIFEST_INTERVAL_S = 2.0

    def __init__(self, out_dir, manifest: dict, lock_fd: int):
        self.dir = Path(out_dir)
        self.manifest = manifest
        self._lock_fd = lock_fd
        self._last_manifest = 0.0
        self._chunk_status = {c["name"]: c for c in manifest["chunks"]}
        self.warnings: list[str] = []  # one line each: damage found and repaired on open (the runner prints them)

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
        entries this module writes). A non-empty directory that is not a results directory is refused. Resuming
        checks every chunk file (damaged ones are moved to ``damaged/`` and recomputed, see :attr:`warnings`) and
        rebuilds a damaged manifest. A directory that cannot be written raises :class:`StoreError`.
        """
        out_dir = Path(out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"--out {out_dir} is a file; give a directory path")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            lock_fd = cls._lock(out_dir)
        except OSError as e:
            raise _unwritable(out_dir, e) from None
        try:
            return cls._open_locked(out_dir, lock_fd, resolved=resolved, cfg_hash=cfg_hash, points=points,
                                    chunk_size=chunk_size, force=force, info=info)
        except OSError as e:
            os.close(lock_fd)
            raise _unwritable(out_dir, e) from None
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _open_locked(cls, out_dir: Path, lock_fd: int, *, resolved, cfg_hash, points, chunk_size, force, info):
        manifest_path = out_dir / "manifest.json"
        if force:
            cls._clear(out_dir, keep_damaged=False)
        else:
            old, why = None, None
            if manifest_path.exists():
                try:
                    old = _read_manifest(out_dir)
                except ValueError as e:
                    why = str(e)
            elif any((out_dir / "points.parquet").glob("*.parquet")):
                why = "missing"
            if old is not None:
                if old.get("config_hash") != cfg_hash:
                    raise cls._other_config(out_dir, resolved)
                store = cls(out_dir, old, lock_fd)
                if old["chunk_size"] != chunk_size:
                    store.note = (f"resuming with the directory's chunk size {old['chunk_size']} (requested "
                                  f"{chunk_size})")
                store._resume(info)
                return store
            if why is not None:
                return cls._recover(out_dir, lock_fd, why, resolved=resolved, cfg_hash=cfg_hash, points=points,
                                    chunk_size=chunk_size, info=info)
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

    note: str = ""

    @classmethod
    def _other_config(cls, out_dir: Path, resolved: dict) -> ConfigError:
        why = _first_difference(cls._old_config(out_dir), resolved)
        return ConfigError(
            f"{out_dir} holds results of a different config ({why}); use another --out, or --force to "
            "delete them and start over"
        )

    @classmethod
    def _recover(cls, out_dir: Path, lock_fd: int, why: str, *, resolved, cfg_hash, points, chunk_size, info):
        """Rebuild a damaged or missing manifest from config.toml and the chunk files' own metadata."""
        state = "missing" if why == "missing" else f"damaged ({why})"
        old_cfg = cls._old_config(out_dir)
        if old_cfg and _config_hash(old_cfg) != cfg_hash:
            raise cls._other_config(out_dir, resolved)
        files = sorted((out_dir / "points.parquet").glob("*.parquet"))
        metas = [m for f in files if (m := _parquet_meta(f))]
        if any(m.get("config_hash") != cfg_hash for m in metas):
            raise ConfigError(f"{out_dir} holds chunk files of a different config and its manifest.json is {state}; "
                              "use another --out, or --force to delete them and start over")
        if files and not old_cfg and not metas:
            raise ConfigError(f"{out_dir / 'manifest.json'} is {state}, and neither config.toml nor the chunk files "
                              "say which config the results belong to; use another --out, or --force to delete them "
                              "and start over")
        sizes = sorted({int(m["chunk_size"]) for m in metas if isinstance(m.get("chunk_size"), int)})
        size = sizes[0] if len(sizes) == 1 else chunk_size
        manifest = cls._new_manifest(resolved, cfg_hash, points, size, None)
        manifest["runs"] = []
        store = cls(out_dir, manifest, lock_fd)
        damaged_copy = ""
        if (out_dir / "manifest.json").exists():
            damaged_copy = f" (the damaged copy is {store._move_aside(out_dir / 'manifest.json', why)})"
        store.warnings.append(f"warning: {out_dir / 'manifest.json'} is {state}; rebuilt it from config.toml and the "
                              f"chunk files{damaged_copy}")
        manifest["recovered"] = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reason": f"manifest.json {why}"}
        if not old_cfg:
            atomic_write(out_dir / "config.toml", config_to_toml(resolved).encode())
        if size != chunk_size:
            store.note = f"resuming with the directory's chunk size {size} (requested {chunk_size})"
        store._resume(info)
        return store

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
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return {}

    @staticmethod
    def _clear(out_dir: Path, *, keep_damaged: bool = True) -> None:
        for name in KNOWN_ENTRIES:
            p = out_dir / name
            if name == ".lock" or (name == "damaged" and keep_damaged):
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

    def _move_aside(self, path: Path, reason: str) -> str:
        """Move a damaged (or foreign) file to DIR/damaged/ under a free name; returns where it went."""
        dest_dir = self.dir / "damaged"
        dest_dir.mkdir(exist_ok=True)
        dest = dest_dir / path.name
        n = 1
        while dest.exists():
            dest = dest_dir / f"{path.name}.{n}"
            n += 1
        os.replace(path, dest)
        self.manifest.setdefault("repairs", []).append({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "file": _rel(self.dir, path),
            "moved_to": _rel(self.dir, dest), "reason": reason,
        })
        return _rel(self.dir, dest)

    def _resume(self, info: dict | None) -> None:
        for tmp in [*self.dir.glob(".tmp-*"), *self.dir.glob("*/.tmp-*")]:
            tmp.unlink(missing_ok=True)  # partial writes of a killed run
        (self.dir / "points.parquet").mkdir(exist_ok=True)
        (self.dir / "arrays").mkdir(exist_ok=True)
        self._set_aside_strays()
        cfg_hash = self.manifest["config_hash"]
        redo_points = set()
        for c in self.manifest["chunks"]:
            paths = _chunk_paths(self.dir, c["name"])
            present = {k: p.is_file() for k, p in paths.items()}
            recorded = c.get("status") == "done"
            if not present["parquet"] and not recorded:
                # not finished (an .npz alone is the first half of a write a kill interrupted: rewritten)
                c["status"] = "pending"
                c.pop("files", None)
                continue
            problems, digests = [], {}
            for kind in ("parquet", "npz"):
                why, digest = _check_chunk_file(self.dir, c, kind, cfg_hash) if present[kind] else ("missing", None)
                if why:
                    problems.append(f"{_rel(self.dir, paths[kind])} is {why}")
                elif digest:
                    digests[kind] = digest
            if problems:
                for kind in ("parquet", "npz"):
                    if present[kind]:
                        self._move_aside(paths[kind], "; ".join(problems))
                moved = f" (damaged files moved to {self.dir / 'damaged'})" if any(present.values()) else ""
                self.warnings.append(f"warning: chunk {c['name']}: {'; '.join(problems)}; recomputing it{moved}")
                c["status"] = "pending"
                c.pop("files", None)
                redo_points.add(c["point"])
            else:
                c["status"] = "done"
                if digests:
                    c["files"] = {**(c.get("files") or {}), **digests}
        self._check_consolidated(redo_points)
        if any(c["status"] == "pending" for c in self.manifest["chunks"]):
            self.manifest["status"] = "running"
        self.manifest["runs"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(info or {})})
        self.write_manifest()

    def _set_aside_strays(self) -> None:
        """Move chunk-like files that are not part of this sweep's plan out of the dataset (a table never mixes)."""
        names = set(self._chunk_status)
        consolidated = {_consolidated_rel(self.manifest, p) for p in self.manifest["points"]}
        strays = [f for f in (self.dir / "points.parquet").glob("*.parquet") if f.stem not in names]
        strays += [f for f in (self.dir / "arrays").glob("*.npz")
                   if f.stem not in names and _rel(self.dir, f) not in consolidated]
        for f in sorted(strays):
            where = self._move_aside(f, "not a chunk of this sweep's plan")
            self.warnings.append(f"warning: {_rel(self.dir, f)} is not a chunk of this sweep; moved it to {where}")

    def _check_consolidated(self, redo_points: set) -> None:
        """Check the consolidated arrays; a damaged one (or one whose chunks are recomputed) is set aside."""
        records = self.manifest.setdefault("consolidated", {})
        for p in self.manifest["points"]:
            rel = _consolidated_rel(self.manifest, p)
            path = self.dir / rel
            if not path.is_file():
                records.pop(rel, None)
                continue
            if p["index"] in redo_points:  # rebuilt once the chunks are in (the old copy is kept, not warned of)
                self._move_aside(path, "a chunk it was built from is recomputed")
                records.pop(rel, None)
                continue
            record = records.get(rel)
            if record:
                why = _record_problem(path, record)
            else:
                try:
                    _read_npz_whole(path, np.arange(p["count"]))
                    why = None
                    records[rel] = _file_digest(path)
                except ValueError as e:
                    why = str(e)
            if why:
                where = self._move_aside(path, why)
                records.pop(rel, None)
                self.warnings.append(f"warning: {rel} is {why}; rebuilding it from the chunk files (the damaged copy "
                                     f"is {where})")

    # ------------------------------------------------------------------ chunks
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

        ``rows`` and ``arrays`` may hold ``chunk.run_count`` entries; only the first ``chunk.count`` are kept. The
        size and sha256 of both files go into the chunk's manifest entry.
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
        meta = {"format": FORMAT, "config_hash": self.manifest["config_hash"], "chunk": chunk.name,
                "point": chunk.point, "index": chunk.index, "start": chunk.start, "count": chunk.count,
                "chunk_size": self.manifest["chunk_size"]}
        npz, parquet = _npz_bytes(arrays), _parquet_bytes(rows, meta)
        paths = _chunk_paths(self.dir, chunk.name)
        try:
            atomic_write(paths["npz"], npz)
            atomic_write(paths["parquet"], parquet)
        except OSError as e:
            raise _unwritable(self.dir, e) from None
        entry = self._chunk_status[chunk.name]
        entry["files"] = {"npz": _digest(npz), "parquet": _digest(parquet)}
        entry["status"] = "done"
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
        try:
            atomic_write(self.dir / "manifest.json", (json.dumps(self.manifest, indent=1) + "\n").encode())
        except OSError as e:
            raise _unwritable(self.dir, e) from None

    @property
    def complete(self) -> bool:
        return all(c["status"] == "done" for c in self.manifest["chunks"])

    def consolidate(self) -> list[Path]:
        """Concatenate chunk arrays per grid point: DIR/arrays.npz (sweep of one) or DIR/arrays/pNNNN.npz.

        A consolidated file already there was checked on open; a new one is built from the (checked) chunk files
        and its size and sha256 go into the manifest.
        """
        written = []
        records = self.manifest.setdefault("consolidated", {})
        for p in self.manifest["points"]:
            rel = _consolidated_rel(self.manifest, p)
            target = self.dir / rel
            if target.is_file() and rel in records:
                continue
            arrays = _load_arrays(self.dir, self.manifest, p["index"], consolidated=False)
            data = _npz_bytes(arrays)
            try:
                atomic_write(target, data)
            except OSError as e:
                raise _unwritable(self.dir, e) from None
            records[rel] = _digest(data)
            written.append(target)
        if written:
            self.write_manifest()
        return written

    def finish(self) -> None:
        """Mark the sweep complete in the manifest."""
        self.manifest["status"] = "complete" if self.complete else "running"
        self.manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.write_manifest()

    def close(self) -> None:
        """Write the manifest (if the directory still takes it) and release the directory lock."""
        if self._lock_fd is not None:
            try:
                self.write_manifest()
            except StoreError:
                pass  # the error that stopped the run has been raised already
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None
