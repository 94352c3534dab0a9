"""``landscape report DIR``: the sweep table (per grid point: counts per class, loss levels, rates) and figures.

Per grid point, with n trajectories: counts of global minima (kind ``minimum`` with zero loss, ``is_global``: decided
from the measured loss, gradient norm and curvature, or by the symmetry analyzer's identification),
spurious minima (kind ``minimum`` above it), saddles, degenerate, not converged and diverged points; the spurious
rate = spurious minima / n; the number of distinct certified loss levels and the lowest spurious loss. Figures:
``figures/sweep_rates.png`` (fraction of spurious minima, saddles and global minima versus each swept key) and
``figures/sweep_kinds.png`` (class fractions per grid point). Works on a partly finished sweep too.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..analysis.levels import merge_levels  # noqa: E402
from ..store import load_manifest, load_points  # noqa: E402

__all__ = ["add_parser", "main", "sweep_table", "format_sweep_table", "write_sweep_figures"]

CLASSES = ("global_min", "spurious_min", "saddle", "degenerate", "not_converged", "diverged")
CLASS_COLORS = {
    "global_min": "tab:blue",
    "spurious_min": "tab:green",
    "saddle": "tab:red",
    "degenerate": "tab:orange",
    "not_converged": "tab:gray",
    "diverged": "black",
    "other": "tab:purple",
}


def _classes(table: pd.DataFrame) -> pd.Series:
    """Class per row: the kind, with minima split into global and spurious by ``is_global``."""
    kind = table["kind"].astype(str)
    is_global = table["is_global"].astype(bool) if "is_global" in table else pd.Series(False, index=table.index)
    cls = kind.where(kind != "minimum", np.where(is_global, "global_min", "spurious_min"))
    return cls.where(cls.isin(CLASSES), "other")


def sweep_table(table: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """One row per grid point: swept values, n, counts per class, spurious rate, loss levels, lowest spurious loss."""
    keys = manifest.get("grid_keys", [])
    cls = _classes(table)
    out = []
    for p in manifest["points"]:
        sel = (table["grid_point"] == p["index"]).to_numpy()
        rows, c = table[sel], cls[sel]
        n = int(sel.sum())
        row = {"point": p["name"], **{k: p["values"][k] for k in keys}, "n": n, "expected": p["count"]}
        for name in CLASSES:
            row[name] = int((c == name).sum())
        if (c == "other").any():
            row["other"] = int((c == "other").sum())
        row["spurious_rate"] = row["spurious_min"] / n if n else np.nan
        row["global_rate"] = row["global_min"] / n if n else np.nan
        cert = rows[rows["certified"].astype(bool)] if "certified" in rows else rows
        row["loss_levels"] = len(merge_levels(cert["loss"].to_numpy(float)))
        spur = rows["loss"][(c == "spurious_min").to_numpy()]
        row["min_spurious_loss"] = float(spur.min()) if len(spur) else np.nan
        out.append(row)
    return pd.DataFrame(out)


def format_sweep_table(table: pd.DataFrame, manifest: dict) -> str:
    """The printed sweep table (one line per grid point)."""
    st = sweep_table(table, manifest)
    done, total = int(st["n"].sum()), int(st["expected"].sum())
    head = f"{len(st)} grid points, {done} of {total} trajectories"
    head += "" if done == total else " (sweep not finished: re-run 'landscape run' with the same arguments)"
    cols = ["point", *manifest.get("grid_keys", []), "n", *CLASSES,
            *(["other"] if "other" in st else []), "spurious_rate", "loss_levels", "min_spurious_loss"]
    short = {"global_min": "global", "spurious_min": "spurious", "not_converged": "not_conv",
             "spurious_rate": "spur.rate", "loss_levels": "levels", "min_spurious_loss": "min spur. loss"}

    def cell(col, v):
        if col == "spurious_rate":
            return "n/a" if pd.isna(v) else f"{v:.3f}"
        if col == "min_spurious_loss":
            return "-" if pd.isna(v) else f"{v:.4e}"
        return str(v)

    body = [[cell(c, r[c]) for c in cols] for _, r in st.iterrows()]
    header = [short.get(c, c) for c in cols]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(cols))]
    lines = [head, ""]
    for r in [header, *body]:
        lines.append("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths,
                                                                                                   strict=True))))
    lines.append("")
    lines.append("global/spurious: minima with zero / positive loss (is_global: measured, or identified by symmetry); "
                 "spur.rate = spurious / n; levels = distinct certified loss values")
    return "\n".join(lines)


def _numeric(values) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def write_sweep_figures(fig_dir, table: pd.DataFrame, manifest: dict) -> list[Path]:
    """Write sweep_rates.png (rates versus each swept key) and sweep_kinds.png (class fractions per point)."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    st = sweep_table(table, manifest)
    keys = manifest.get("grid_keys", [])
    written = []
    if keys:
        fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 4), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            others = [k for k in keys if k != key]
            groups = st.groupby(others, sort=False) if others else [((), st)]
            groups = list(groups)
            if len(groups) > 6:  # too many lines: average over the other keys
                groups = [(("mean over " + ", ".join(others),), st.groupby(key, sort=False).mean(numeric_only=True)
                           .reset_index())]
            xs_all = st[key].tolist()
            numeric = _numeric(xs_all)
            cats = list(dict.fromkeys(str(x) for x in xs_all))
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], color=CLASS_COLORS[c], marker=mk, label=name) for c, mk, name in
                       (("spurious_min", "o", "spurious minima"), ("global_min", "o", "global minima"),
                        ("saddle", "s", "saddles + degenerate"))]
            for (gkey, g), style in zip(groups, itertools.cycle(["-", "--", ":", "-."])):
                g = g.sort_values(key) if numeric else g
                x = g[key].to_numpy(float) if numeric else np.array([cats.index(str(v)) for v in g[key]])
                for rate, col in (("spurious_rate", "spurious_min"), ("global_rate", "global_min")):
                    ax.plot(x, g[rate].to_numpy(float), style, marker="o", color=CLASS_COLORS[col])
                sad = (g["saddle"] + g["degenerate"]) / g["n"].where(g["n"] > 0)
                ax.plot(x, sad.to_numpy(float), style, marker="s", color=CLASS_COLORS["saddle"])
                if others:
                    vals = gkey if isinstance(gkey, tuple) else (gkey,)
                    label = ", ".join(f"{k}={v}" for k, v in zip(others, vals, strict=False)) if len(vals) == len(
                        others) else vals[0]
                    handles.append(Line2D([], [], color="0.3", linestyle=style, label=label))
            if numeric:
                pos = np.asarray(xs_all, float)
                if (pos > 0).all() and pos.max() / pos.min() > 100:
                    ax.set_xscale("log")
                if all(isinstance(v, int) for v in xs_all):
                    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            else:
                ax.set_xticks(range(len(cats)), cats)
            ax.set_xlabel(key)
            ax.set_ylabel("fraction of trajectories")
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            ax.set_title(f"end points versus {key}")
            ax.legend(handles=handles, fontsize=7, loc="best")
        fig.tight_layout()
        path = fig_dir / "sweep_rates.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(st) + 3), 4.5))
    bottom = np.zeros(len(st))
    n = st["n"].where(st["n"] > 0).to_numpy(float)
    for name in (*CLASSES, "other"):
        if name not in st:
            continue
        frac = np.nan_to_num(st[name].to_numpy(float) / n)
        ax.bar(range(len(st)), frac, bottom=bottom, color=CLASS_COLORS[name], label=name.replace("_", " "))
        bottom += frac
    labels = [", ".join(str(v) for v in r[keys]) if keys else r["point"] for _, r in st.iterrows()]
    ax.set_xticks(range(len(st)), labels, rotation=60 if len(st) > 6 else 0, ha="right" if len(st) > 6 else "center",
                  fontsize=8)
    ax.set_xlabel(", ".join(keys) if keys else "grid point")
    ax.set_ylabel("fraction of trajectories")
    ax.set_title("class of the end points per grid point")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    path = fig_dir / "sweep_kinds.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def add_parser(subparsers) -> None:
    """Register ``landscape report DIR [--no-figures] [--json]``."""
    p = subparsers.add_parser("report", help="print a sweep's table per grid point and write its summary figures")
    p.add_argument("result_dir", help="results directory written by 'landscape run'")
    p.add_argument("--no-figures", action="store_true", help="print the table only")
    p.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.set_defaults(func=main)


def main(args) -> int:
    """Print the sweep table of ``args.result_dir`` and write its summary figures; returns the exit code."""
    out_dir = Path(args.result_dir)
    manifest = load_manifest(out_dir)
    table = load_points(out_dir)
    if getattr(args, "json", False):
        st = sweep_table(table, manifest)
        print(json.dumps(json.loads(st.to_json(orient="records")), indent=1))
    else:
        print(format_sweep_table(table, manifest))
    if not getattr(args, "no_figures", False):
        paths = write_sweep_figures(out_dir / "figures", table, manifest)
        print("figures: " + ", ".join(str(p) for p in paths))
    return 0
