"""Figure ``connectivity``: a zero-loss path for m = r* + 1 against the barrier for m = r* (Şimşek et al. 2021).

From ``configs/connectivity.toml`` (a landscape config of the width m = r* + 1 student, plus a ``[connectivity]``
table): two global minima of the width-(r* + 1) student, A (the teacher plus a zero-output neuron) and B (the
teacher's neurons in reverse order with neuron ``r* - 1`` split into two copies with ratio ``split``), are joined by
the certified zero-loss path of :func:`landscape.analysis.paths.zero_loss_path`; the two permuted global minima of
the width-r* student are joined by a climbing-image NEB (:func:`landscape.analysis.paths.neb`) whose top image is
polished into a certified saddle. Panels: (a) the loss along both paths against normalised arc length (linear
scale: the barrier), (b) the accurate loss along the zero-loss path on a log scale with the 1e-25 certification
level and the vertices, (c) the loss on the plane through the two width-r* minima and the saddle
(:func:`landscape.analysis.paths.loss_slice`), with the NEB band projected onto it. The numbers go to
``connectivity.json``. Also home of the plotting helpers of ``landscape slice`` and ``landscape connect``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..config import ConfigError  # noqa: E402

__all__ = ["make", "plot_slice", "plot_profile", "FLOOR"]

FLOOR = 1e-40
"""Losses below this (exact zeros included) are drawn at this level on log scales."""

SLICE_RANGE = 1e-8
"""Contour plots of slices show log10 loss over at most 8 decades below the maximum (lower values at the floor)."""

DEFAULTS = {"split": 0.3, "spare": None, "n_images": 21, "n_per_segment": 129, "slice_n": 81, "seed": 0}
QUICK = {"n_images": 15, "n_per_segment": 33, "slice_n": 31}


def _log10(loss):
    return np.log10(np.maximum(np.asarray(loss, float), FLOOR))


def plot_slice(s, path, *, title: str = "", ax=None, band=None) -> Path | None:
    """Draw a :class:`landscape.analysis.paths.Slice`: a line (loss and log10 loss) or a plane (filled contours of
    log10 loss, colour bar in log10 units, marked points with their losses). ``band``: (k, 2) plane coordinates of
    a path to overlay. Writes ``path`` when ``ax`` is None."""
    own = ax is None
    if s.ndim == 1:
        if own:
            fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        else:
            axes, fig = [ax, ax.twinx()], ax.figure
        axes[0].plot(s.alphas, s.loss, color="C0")
        axes[0].set_ylabel("loss")
        axes[1].plot(s.alphas, _log10(s.loss), color="C1")
        axes[1].set_ylabel("log10 loss")
        for a in axes[:1]:
            a.axvline(0.0, color="k", lw=0.8, ls=":")
            a.plot([0.0], [s.origin_loss], "k*", ms=10, label=f"point: loss {s.origin_loss:.3e}")
            a.legend(loc="upper center", fontsize=8)
        for a in axes:
            a.set_xlabel(s.labels[0])
    else:
        if own:
            fig, ax = plt.subplots(figsize=(6.5, 5.2), constrained_layout=True)
        fig = ax.figure
        top = float(np.nanmax(s.loss)) if np.isfinite(s.loss).any() else 1.0
        floor = max(top * SLICE_RANGE, FLOOR)  # a readable colour range: SLICE_RANGE decades below the maximum
        z = np.log10(np.maximum(s.loss, floor)).T
        levels = np.linspace(np.floor(z.min()), np.ceil(z.max()), 25)
        cs = ax.contourf(s.alphas, s.betas, z, levels=levels, cmap="viridis")
        ax.contour(s.alphas, s.betas, z, levels=levels[::3], colors="w", linewidths=0.4)
        fig.colorbar(cs, ax=ax, label="log10 loss")
        markers = iter(["*", "o", "s", "^", "D"])
        if band is not None:
            ax.plot(band[:, 0], band[:, 1], "w.-", lw=1, ms=4, label="NEB band (projected)")
        for name, xy in s.marks.items():
            ax.plot([xy[0]], [xy[1]], next(markers, "o"), color="r", ms=9, mec="w",
                    label=f"{name}: loss {s.mark_loss.get(name, np.nan):.3e}")
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
        ax.text(0.01, 0.01, f"colour: log10 loss, {z.min():.1f} (floor) to {z.max():.1f}", transform=ax.transAxes,
                fontsize=7, color="w")
        ax.set_xlabel(s.labels[0])
        ax.set_ylabel(s.labels[1])
    (axes[0] if s.ndim == 1 else ax).set_title(title or "loss slice", fontsize=9)
    if own:
        path = Path(path)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path
    return None


def plot_profile(curves: dict, marks: dict, path, *, title: str = "", log: bool = False) -> Path:
    """Loss profiles against arc length: ``curves`` name -> (s, loss), ``marks`` name -> (s, loss) points."""
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for name, (s, loss) in curves.items():
        ax.plot(s, _log10(loss) if log else loss, label=name)
    for name, (s, loss) in marks.items():
        ax.plot(s, _log10(loss) if log else loss, "o", ms=5, label=name)
    if log:
        ax.axhline(-25, color="r", ls="--", lw=0.8, label="certification level 1e-25")
    ax.set_xlabel("arc length in parameter space")
    ax.set_ylabel("log10 accurate loss" if log else "loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _read(config_path: Path):
    from ..config import build_problem, config_from_dict

    raw = tomllib.loads(Path(config_path).read_text())
    opts = dict(DEFAULTS)
    extra = raw.pop("connectivity", {})
    if not isinstance(extra, dict):
        raise ConfigError("[connectivity] must be a table")
    unknown = sorted(set(extra) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown key connectivity.{unknown[0]}; valid keys: {', '.join(DEFAULTS)}")
    opts.update(extra)
    cfg = config_from_dict(raw)
    if not cfg.student.train_output_weights:
        raise ConfigError("figure connectivity: student.train_output_weights must be true (paths move output weights)")
    if cfg.student.width != cfg.teacher.width + 1:
        raise ConfigError(f"figure connectivity: student.width = {cfg.student.width} must be teacher.width + 1 = "
                          f"{cfg.teacher.width + 1}")
    if not 0.0 < float(opts["split"]) < 1.0:
        raise ConfigError(f"connectivity.split = {opts['split']} must lie in (0, 1)")
    return build_problem(cfg), opts


def make(config_path: Path | None, out_dir: Path, *, quick: bool) -> list[Path]:
    """Draw the connectivity figure (see the module docstring); returns [png, json]."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from ..analysis.paths import NEB, loss_slice, neb, plane_through, zero_loss_path
    from ..problem.networks import TwoLayer

    if config_path is None:
        raise ConfigError("figure connectivity needs a config (configs/connectivity.toml)")
    problem, opts = _read(config_path)
    if quick:
        opts.update(QUICK)
    V = np.asarray(problem.teacher_params["w"], float)
    c = np.asarray(problem.teacher_params["a"], float)
    r, d = V.shape
    spare = np.asarray(opts["spare"], float) if opts["spare"] is not None else np.linspace(1.0, -1.0, d)
    if spare.shape != (d,):
        raise ConfigError(f"connectivity.spare must have {d} entries (the input dimension)")
    lam = float(opts["split"])
    # two global minima of the width r* + 1 student: teacher + zero-output neuron; reversed teacher with a split
    theta_a = {"w": jnp.asarray(np.vstack([V, spare])), "a": jnp.asarray(np.append(c, 0.0))}
    rev = np.arange(r)[::-1]
    theta_b = {"w": jnp.asarray(np.vstack([V[rev], V[rev[-1]]])),
               "a": jnp.asarray(np.append(c[rev[:-1]], [lam * c[rev[-1]], (1 - lam) * c[rev[-1]]]))}
    path = zero_loss_path(problem, theta_a, theta_b, n_per_segment=int(opts["n_per_segment"]))
    # the width-r* student: its two permuted global minima and the NEB between them
    narrow = problem.with_student(TwoLayer(r, problem.student.activation, problem.student.bias, d))
    ma = {"w": jnp.asarray(V), "a": jnp.asarray(c)}
    mb = {"w": jnp.asarray(V[rev]), "a": jnp.asarray(c[rev])}
    band = neb(narrow, ma, mb, NEB(n_images=int(opts["n_images"])), key=jax.random.key(int(opts["seed"])))
    sd = band.saddle
    # the plane through the two minima and the saddle, with the band projected onto it
    dirs, coords = plane_through(ma, mb, sd.theta)
    pad = 0.3 * max(np.ptp(coords[:, 0]), np.ptp(coords[:, 1]))
    ranges = [(min(0.0, coords[:, j].min()) - pad, max(0.0, coords[:, j].max()) + pad) for j in range(2)]
    sl = loss_slice(narrow, ma, dirs, n=int(opts["slice_n"]), ranges=ranges,
                    labels=["towards the permuted minimum", "towards the saddle (orthogonalised)"],
                    marks={"permuted minimum": coords[1], "saddle": coords[2]})
    x0 = np.asarray(ravel_pytree(ma)[0], float)
    flat = np.concatenate([band.images[k].reshape(len(band.loss), -1) for k in sorted(band.images)], axis=1)
    proj = (flat - x0) @ dirs.T

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), constrained_layout=True)
    ax = axes[0]
    ax.plot(band.s / band.s[-1], band.loss, "o-", color="C3", ms=4, label=f"m = r* = {r}: NEB band")
    ax.plot([band.s[band.top] / band.s[-1]], [sd.loss], "*", color="k", ms=12,
            label=f"certified saddle, index {sd.index}: loss {sd.loss:.4f}")
    ax.plot(path.s / path.length, path.loss, color="C0", lw=2, label=f"m = r* + 1 = {r + 1}: zero-loss path")
    ax.set_xlabel("normalised arc length")
    ax.set_ylabel("loss")
    ax.set_title(f"(a) barrier {band.barrier_from:.4f} (m = {r}) vs max loss {path.max_loss:.1e} (m = {r + 1})",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(path.s, _log10(path.loss), color="C0", lw=1, label="accurate loss along the path")
    vs = np.concatenate([[0.0], np.cumsum(path.segment_lengths)])
    ax.plot(vs, _log10(path.vertex_loss), "ko", ms=4, label=f"vertices ({int(path.vertex_certified.sum())}/"
            f"{len(vs)} certified, |grad| <= {path.grad_tol:.0e})")
    ax.axhline(np.log10(path.loss_tol), color="r", ls="--", lw=1, label=f"certification level {path.loss_tol:.0e}")
    for k, sub in enumerate(path.segment_subspaces):
        kind = sub.split("|n=")[1].split("|d=")[0] if "|n=" in sub else sub
        ax.text(0.5 * (vs[k] + vs[k + 1]), -22, kind, rotation=90, fontsize=6, ha="center", va="bottom")
    ax.set_ylim(np.log10(FLOOR) - 1, -16)
    ax.set_xlabel("arc length in parameter space")
    ax.set_ylabel(f"log10 loss (zeros drawn at {FLOOR:.0e})")
    ax.set_title(f"(b) zero-loss path, m = {r + 1}: {path.n_segments} segments, length {path.length:.3f}",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    plot_slice(sl, None, ax=axes[2], band=proj,
               title=f"(c) m = {r}: plane through the two minima and the saddle")
    png = Path(out_dir) / "connectivity.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    numbers = {"config": str(config_path), "quick": bool(quick), "teacher_width": r, "input_dim": d,
               "activation": problem.student.activation.label, "zero_loss_path": path.summary(),
               "neb": band.summary(), "slice": sl.summary()}
    js = Path(out_dir) / "connectivity.json"
    js.write_text(json.dumps(numbers, indent=2, default=float))
    print(f"zero-loss path (m = {r + 1}): {path.n_segments} segments, length {path.length:.6f}, max accurate loss "
          f"{path.max_loss:.3e} over {path.loss.size} points, vertices certified "
          f"{int(path.vertex_certified.sum())}/{len(vs)}, max vertex |grad| {path.vertex_grad_norm.max():.2e}")
    for mv, sub in zip(path.moves, path.segment_subspaces, strict=True):
        print(f"  {sub:40s} {mv}")
    print(f"NEB (m = {r}): {band.n_iter} iterations, max force {band.max_force:.2e}, band barrier "
          f"{band.band_barrier:.6e}, length {band.s[-1]:.4f}")
    print(f"  saddle: {sd.kind} index {sd.index}, loss {sd.loss:.9e}, |grad| {sd.grad_norm:.2e}, "
          f"{sd.sym_class} from width {sd.reduced_width} ({sd.subspace_label}), eigenvalues "
          + ", ".join(f"{e:.3e}" for e in sd.eigenvalues))
    print(f"  barrier heights: {band.barrier_from:.6e} and {band.barrier_to:.6e}")
    print(f"slice (m = {r}): {sl.loss.shape[0]}x{sl.loss.shape[1]} grid, loss from {sl.loss.min():.3e} to "
          f"{sl.loss.max():.3e}, at the minimum {sl.origin_loss:.3e}")
    return [png, js]
