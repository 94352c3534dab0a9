"""Figures of one run: loss and gradient-norm curves of all trajectories, and Hessian spectra of the end points.

Reads the rows and arrays a run stored; draws with matplotlib (Agg backend, no display needed).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["write_figures", "KIND_COLORS", "curves_figure", "spectra_figure"]

KIND_COLORS = {
    "minimum": "tab:blue",
    "saddle": "tab:red",
    "degenerate": "tab:orange",
    "not_converged": "tab:gray",
    "diverged": "black",
}


def _legend(ax, kinds):
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=KIND_COLORS.get(k, "tab:purple"), label=k) for k in kinds]
    ax.legend(handles=handles, fontsize=8, loc="best")


MAX_CURVES = 400


def curves_figure(table: pd.DataFrame, arrays: dict, title: str = ""):
    """Loss and gradient-norm curves of every trajectory (colour = class of its end point); a matplotlib Figure."""
    table = _aligned(table, arrays)
    t, loss, gn = arrays["curve.t"], arrays["curve.loss"], arrays["curve.grad_norm"]
    kinds = table["kind"].to_numpy()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    shown = np.arange(len(kinds))
    if len(kinds) > MAX_CURVES:  # an evenly spaced subsample keeps big runs fast to draw
        shown = np.linspace(0, len(kinds) - 1, MAX_CURVES).astype(int)
    order = shown[np.argsort([kinds[i] != "minimum" for i in shown], kind="stable")]  # minima first, others on top
    drawn = [0, 0]
    for i in order:
        c = KIND_COLORS.get(kinds[i], "tab:purple")
        for k, (ax, y) in enumerate(zip(axes, (loss[i], gn[i]), strict=True)):
            ok = np.isfinite(t[i]) & np.isfinite(y) & (t[i] > 0)
            if ok.any():
                ax.plot(t[i][ok], np.maximum(y[ok], 1e-32), color=c, alpha=0.35, lw=1)
                drawn[k] += 1
    for ax, name, n_drawn in zip(axes, ("loss", "gradient norm"), drawn, strict=True):
        if n_drawn:  # log axes need at least one positive value
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no finite values\n(every trajectory diverged)", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel("time t (gradient flow) or steps x lr")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    n_shown = f"{len(shown)} of {len(kinds)}" if len(shown) < len(kinds) else f"{len(kinds)}"
    axes[0].set_title(f"{title + ': ' if title else ''}loss along {n_shown} trajectories")
    axes[1].set_title("gradient norm (colour = class of the end point)")
    _legend(axes[0], [k for k in KIND_COLORS if k in set(kinds)])
    fig.tight_layout()
    return fig


def spectra_figure(table: pd.DataFrame, arrays: dict, title: str = ""):
    """Hessian spectra of the end points sorted by loss, and the spectral density; a matplotlib Figure."""
    table = _aligned(table, arrays)
    eigs = arrays["eigenvalues"]
    kinds = table["kind"].to_numpy()
    loss = table["loss"].to_numpy()
    order = np.lexsort((np.arange(len(loss)), np.where(np.isfinite(loss), loss, np.inf)))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    finite_eigs = eigs[np.isfinite(eigs)]
    lin = max(float(np.min(np.abs(finite_eigs[finite_eigs != 0]))) if np.any(finite_eigs != 0) else 1e-12, 1e-12)
    if len(order) > MAX_CURVES:
        order = order[np.linspace(0, len(order) - 1, MAX_CURVES).astype(int)]
    for rank, i in enumerate(order):
        e = eigs[i][np.isfinite(eigs[i])]
        axes[0].scatter(np.full(e.shape, rank), e, s=6, color=KIND_COLORS.get(kinds[i], "tab:purple"), alpha=0.7)
    axes[0].set_yscale("symlog", linthresh=max(lin, 1e-8))
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_xlabel("end point (sorted by loss)")
    axes[0].set_ylabel("Hessian eigenvalue (symlog)")
    axes[0].set_title(f"{title + ': ' if title else ''}Hessian spectra at end points")
    _legend(axes[0], [k for k in KIND_COLORS if k in set(kinds)])
    axes[0].grid(alpha=0.3)
    cert = table["certified"].to_numpy()
    sel = eigs[cert] if cert.any() else eigs
    vals = sel[np.isfinite(sel)]
    if vals.size:
        axes[1].hist(vals, bins=80, color="tab:blue", alpha=0.8)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("eigenvalue")
    axes[1].set_ylabel("count (certified points)")
    axes[1].set_title("spectral density")
    fig.tight_layout()
    return fig


def _aligned(table: pd.DataFrame, arrays: dict) -> pd.DataFrame:
    """Rows reordered to the arrays' leading axis (matched by the ``id`` column)."""
    if "id" in arrays and not np.array_equal(np.asarray(arrays["id"]), table["id"].to_numpy()):
        table = table.set_index("id").loc[np.asarray(arrays["id"])].reset_index()
    return table


def write_figures(fig_dir, table: pd.DataFrame, arrays: dict, *, title: str = "") -> list[Path]:
    """Write ``loss_curves.png`` and ``hessian_spectra.png`` into ``fig_dir``; returns the paths written.

    ``table`` rows must be in the same order as the arrays' leading axis (match by the ``id`` column).
    """
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = [fig_dir / "loss_curves.png", fig_dir / "hessian_spectra.png"]
    for path, draw in zip(paths, (curves_figure, spectra_figure), strict=True):
        fig = draw(table, arrays, title)
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return paths
