"""The end of ``landscape run``: summary.json, figures and the printed summary of a complete results directory.

:func:`finalize` is the ``on_complete`` hook the CLI hands to :func:`landscape.sweep.runner.run_sweep` (the sweep
layer never imports the report); it also works on a results directory alone, recovering the grid points from the
stored ``config.toml``.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import numpy as np

from ..grid import GridPoint, expand_sweep
from ..store import SweepStore, atomic_write, load_arrays, load_manifest, load_points

__all__ = ["finalize"]


def _jsonable(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _sum_timings(entries) -> dict:
    out: dict = {}
    for t in entries:
        for k, v in (t or {}).items():
            if isinstance(v, int | float):
                out[k] = out.get(k, 0.0) + float(v)
    return out


def finalize(store: SweepStore | str | Path, points: list[GridPoint] | None = None, *, figures: bool = True,
             echo=print) -> dict:
    """Write summary.json and figures of a results directory, print the summary (sweep of one) or the sweep table.

    Args:
        store: the open :class:`~landscape.store.SweepStore` of a complete run, or the path of a results directory.
        points: the grid points of the sweep (default: expanded from the directory's ``config.toml``).
        figures: draw the run figures of :func:`landscape.report.figures.write_figures` in ``figures/`` (sweep of
            one) or ``figures/pNNNN/`` per grid point, and the sweep figures of :mod:`landscape.report.sweep_report`.
        echo: where the printed summary goes.

    Returns:
        the content of summary.json.
    """
    from .figures import write_figures
    from .summary import format_summary, summarize
    from .sweep_report import format_sweep_table, write_sweep_figures

    if isinstance(store, SweepStore):
        out_dir, manifest = store.dir, store.manifest
    else:
        out_dir = Path(store)
        manifest = load_manifest(out_dir)
    if points is None:
        points = expand_sweep(tomllib.loads((out_dir / manifest.get("config_file", "config.toml")).read_text()))
    table = load_points(out_dir)
    chunks = manifest["chunks"]
    single = len(points) == 1
    point_summaries = []
    for p in points:
        rows = table[table["grid_point"] == p.index].reset_index(drop=True)
        arrays = load_arrays(out_dir, p.index)
        timings = _sum_timings(c.get("timings") for c in chunks if c["point"] == p.index)
        s = summarize(p.config, rows, arrays, timings)
        point_summaries.append({"index": p.index, "name": p.name, "values": p.values, "seed": p.seed, **s})
    sweep_info = {
        "config_hash": manifest["config_hash"],
        "grid_keys": manifest["grid_keys"],
        "n_points": len(points),
        "n_trajectories": int(len(table)),
        "chunk_size": manifest["chunk_size"],
        "n_chunks": len(chunks),
        "runs": manifest["runs"],
    }
    if single:
        summary = {k: v for k, v in point_summaries[0].items() if k not in ("index", "name", "values", "seed")}
        summary["sweep"] = sweep_info
    else:
        summary = {"sweep": sweep_info, "points": point_summaries}
    # summary.json first: figures come after, and a figure that fails cannot take the summary with it
    atomic_write(out_dir / "summary.json", (json.dumps(summary, indent=1, default=_jsonable) + "\n").encode())
    echo(format_summary(point_summaries[0], table) if single else format_sweep_table(table, manifest))
    if figures:
        for p in points:  # arrays read again, one grid point at a time (a sweep's arrays may not fit in memory)
            rows = table[table["grid_point"] == p.index].reset_index(drop=True)
            _draw(lambda p=p, rows=rows: write_figures(out_dir / "figures" / ("" if single else p.name), rows,
                                                       load_arrays(out_dir, p.index), title=p.label),
                  "figures" + ("" if single else f" of {p.name}"))
        if not single:
            _draw(lambda: write_sweep_figures(out_dir / "figures", table, manifest), "sweep figures")
    return summary


def _draw(draw, what: str) -> None:
    """Draw figures; a failure is one warning line on stderr (summary.json and the results are already written)."""
    try:
        draw()
    except OSError as e:
        print(f"warning: {what} not written ({e.strerror or e}: {e.filename}); summary.json is written",
              file=sys.stderr)
    except Exception as e:  # noqa: BLE001  (a figure is never worth losing a finished run over)
        text = " ".join(str(e).split())[:200]
        print(f"warning: {what} not drawn ({type(e).__name__}: {text}); summary.json is written", file=sys.stderr)
