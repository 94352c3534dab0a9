"""Figures of the symmetry analysis: observed versus predicted subspace counts across student widths (issue 3)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_subspace_counts"]


def plot_subspace_counts(records: list[dict], path) -> Path:
    """Plot, per teacher width r*, distinct subspaces reached against T(r*, m) (global minima) and against the
    predicted number for the symmetry-induced points, over student widths m (log scale).

    Args:
        records: dicts with keys ``r_star``, ``m``, ``T``, ``global_observed`` and optionally ``sym_observed``,
            ``sym_predicted`` (one per (r*, m)).
        path: output file (png/pdf).
    Returns:
        the path written.
    """
    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    r_stars = sorted({rec["r_star"] for rec in records})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, rs in zip(colors, r_stars, strict=False):
        rec = sorted((x for x in records if x["r_star"] == rs), key=lambda x: x["m"])
        ms = [x["m"] for x in rec]
        axes[0].plot(ms, [x["T"] for x in rec], "--", color=c, label=f"T({rs}, m) predicted")
        axes[0].plot(ms, [max(x["global_observed"], 0.8) for x in rec], "o-", color=c, label=f"r* = {rs} observed")
        if any("sym_predicted" in x for x in rec):
            axes[1].plot(ms, [max(x.get("sym_predicted", 0), 0.8) for x in rec], "--", color=c,
                         label=f"r* = {rs} predicted (reached reduced points)")
            axes[1].plot(ms, [max(x.get("sym_observed", 0), 0.8) for x in rec], "o-", color=c,
                         label=f"r* = {rs} observed")
    axes[0].set_title("global-minimum subspaces")
    axes[1].set_title("symmetry-induced subspaces (non-global)")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("student width m")
        ax.set_ylabel("distinct affine subspaces")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
