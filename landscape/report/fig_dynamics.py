"""``landscape figure directional-convergence`` and ``landscape figure saddle-to-saddle`` (Kumar & Haupt 2024).

Both read a config whose ``[problem]``, ``[teacher]``, ``[student]``, ``[init]``, ``[flow]``, ``[polish]`` and
``[analysis]`` tables are those of ``landscape run`` (validated the same way) plus a ``[dynamics]`` table with the
settings of the study (:data:`DIRECTIONAL_KEYS`, :data:`PLATEAU_KEYS`), run it through the public API and write
a PNG, a JSON of the numbers drawn, and print those numbers.

- directional-convergence (``configs/directional_convergence.toml``): KKT points of the neural correlation function
  (:func:`landscape.kkt_points`), then the delta sweep (:func:`landscape.directional_convergence`): cosine of the
  direction at |theta| = radius_factor * delta to the nearest KKT point, and the escape time, against delta, with
  the fitted law against 1/delta^(L-2) (log(1/delta) for L = 2).
- saddle-to-saddle (``configs/saddle_to_saddle.toml``, the quickstart problem): flows from small initialisations
  with parameter snapshots (:func:`landscape.explore`), plateaus certified and classified
  (:func:`landscape.saddle_to_saddle`); loss curves with the certified critical points marked by index and
  reduced width.

README, science section 3.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["directional_convergence_figure", "saddle_to_saddle_figure", "DIRECTIONAL_KEYS", "PLATEAU_KEYS"]

DIRECTIONAL_KEYS = {"deltas": [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6], "radius_factor": 100.0, "escape_drop": 0.1,
                    "horizon": 12.0, "kkt_starts": 64, "kkt_ascent_steps": 1000, "kkt_tol": 1e-12}
"""``[dynamics]`` keys of the directional-convergence figure and their defaults."""

PLATEAU_KEYS = {"flat_tol": 0.02, "min_decades": 0.5}
"""``[dynamics]`` keys of the saddle-to-saddle figure and their defaults."""

QUICK_DIRECTIONAL = {"init.count": 4, "dynamics.deltas": [1e-1, 1e-2, 1e-3], "dynamics.kkt_starts": 8,
                     "dynamics.kkt_ascent_steps": 200, "flow.n_snapshots": 400}
QUICK_PLATEAUS = {"init.count": 3, "flow.n_snapshots": 120}


def _save(fig, numbers: dict, out_dir: Path, name: str) -> list[Path]:
    """Write ``name``.png and the figure's numbers as ``name``.json into ``out_dir``; returns both paths."""
    png, js = out_dir / f"{name}.png", out_dir / f"{name}.json"
    fig.savefig(png, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    js.write_text(json.dumps(numbers, indent=1, default=float))
    return [png, js]


def _read(config_path, defaults: dict, quick: dict | None):
    """(validated run Config, dynamics settings) from a figure config; bad keys are one ConfigError line."""
    from ..config import ConfigError, config_from_dict, read_raw_config

    raw = read_raw_config(config_path)
    dyn = raw.pop("dynamics", {})
    if not isinstance(dyn, dict):
        raise ConfigError(f"[dynamics] must be a table, got {dyn!r}")
    unknown = sorted(set(dyn) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown key dynamics.{unknown[0]}; valid keys in [dynamics]: {', '.join(defaults)}")
    settings = {**defaults, **dyn}
    for key, value in (quick or {}).items():
        section, name = key.split(".")
        if section == "dynamics":
            settings[name] = value
        else:
            raw.setdefault(section, {})[name] = value
    for key, value in settings.items():
        ok = all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0
                 for v in (value if isinstance(value, list) else [value]))
        if not ok or (key == "deltas" and (not isinstance(value, list) or not value)):
            raise ConfigError(f"dynamics.{key} = {value!r} must be {'a list of ' if key == 'deltas' else 'a '}"
                              "positive number" + ("s" if key == "deltas" else ""))
    if raw.get("sweep"):
        raise ConfigError("[sweep] is not used by the dynamics figures; the deltas are dynamics.deltas")
    return config_from_dict(raw), settings


def directional_convergence_figure(config_path: Path | None, out_dir: Path, *, quick: bool) -> list[Path]:
    """Cosine to the nearest KKT point and escape time against delta; see the module docstring."""
    import jax

    from ..analysis.dynamics import directional_convergence, escape_time_law, kkt_points
    from ..config import ConfigError, build_problem

    cfg, st = _read(config_path, DIRECTIONAL_KEYS, QUICK_DIRECTIONAL if quick else None)
    try:
        problem = build_problem(cfg)
        t0 = time.perf_counter()
        kkt = kkt_points(problem, key=jax.random.PRNGKey(cfg.init.seed + 1), n=int(st["kkt_starts"]),
                         ascent_steps=int(st["kkt_ascent_steps"]), tol=float(st["kkt_tol"]))
        t1 = time.perf_counter()
        sweep = directional_convergence(problem, kkt, deltas=st["deltas"], key=jax.random.PRNGKey(cfg.init.seed),
                                        n=cfg.init.count, radius_factor=float(st["radius_factor"]),
                                        escape_drop=float(st["escape_drop"]), horizon=float(st["horizon"]),
                                        n_snapshots=cfg.flow.n_snapshots, rtol=cfg.flow.rtol)
        t2 = time.perf_counter()
    except ValueError as e:
        raise ConfigError(f"{config_path}: {e}") from None
    table = sweep.table()
    print(f"KKT points of N on the unit sphere (L = {kkt.order}; {kkt.n_converged}/{kkt.n_starts} starts reached "
          f"residual <= {kkt.tol:g}):")
    print(kkt.table().to_string(float_format=lambda v: f"{v:.6g}"))
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print(sweep.law)
    numbers = {"config": str(config_path), "settings": st, "order": kkt.order, "lambda_star": sweep.lam,
               "kkt": json.loads(kkt.table().to_json(orient="records")),
               "deltas": sweep.deltas.tolist(), "table": json.loads(table.to_json(orient="records")),
               "cosine": np.where(np.isfinite(sweep.cosine), sweep.cosine, None).tolist(),
               "escape_time": np.where(np.isfinite(sweep.escape_time), sweep.escape_time, None).tolist(),
               "fit": {"slope": sweep.slope, "intercept": sweep.intercept, "predicted_slope": sweep.predicted_slope,
                       "law": sweep.law}, "timings": {"kkt_s": t1 - t0, "sweep_s": t2 - t1}}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = sweep.deltas
    fig, ax = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for j in range(sweep.cosine.shape[1]):
        ax[0].plot(d, 1.0 - sweep.cosine[:, j], ".", color="0.7", ms=3)
    ax[0].plot(d, 1.0 - table["cos_median"], "o-", label="median")
    ax[0].set(xscale="log", yscale="log", xlabel="delta", ylabel="1 - cos(direction, nearest KKT point)",
              title=f"direction at |theta| = {sweep.radius_factor:g} delta (L = {sweep.order})")
    ax[0].legend(fontsize=8)
    for j in range(sweep.escape_time.shape[1]):
        ax[1].plot(d, sweep.escape_time[:, j], ".", color="0.7", ms=3)
    ax[1].plot(d, table["escape_median"], "o", label="median escape time")
    x = np.log(1.0 / d)
    fit = np.exp(sweep.intercept + sweep.slope * x) if sweep.order > 2 else sweep.intercept + sweep.slope * x
    ax[1].plot(d, fit, "-", label=f"fit: slope {sweep.slope:.3f} (paper: {sweep.predicted_slope:.3g})")
    ax[1].plot(d, escape_time_law(d, sweep.order, sweep.lam), "--", label="radial law T(delta), lambda* = L N*")
    ax[1].set(xscale="log", yscale="log" if sweep.order > 2 else "linear", xlabel="delta",
              ylabel=f"time until the loss drops by {100 * sweep.escape_drop:g}%", title="escape time")
    ax[1].legend(fontsize=8)
    return _save(fig, numbers, Path(out_dir), "directional_convergence")


def saddle_to_saddle_figure(config_path: Path | None, out_dir: Path, *, quick: bool) -> list[Path]:
    """Loss curves from small initialisations with their certified plateaus; see the module docstring."""
    import jax

    from ..analysis.dynamics import saddle_to_saddle
    from ..config import ConfigError, build

    cfg, st = _read(config_path, PLATEAU_KEYS, QUICK_PLATEAUS if quick else None)
    if not cfg.flow.save_params:
        raise ConfigError(f"{config_path}: set flow.save_params = true (plateaus are certified from snapshots)")
    try:
        b = build(cfg)
        from ..analysis.explore import explore

        t0 = time.perf_counter()
        res = explore(b.problem, b.flow, key=jax.random.PRNGKey(b.seed), n=b.count, init=b.init, polish=b.polish,
                      analyzers=())
        t1 = time.perf_counter()
        seq = saddle_to_saddle(b.problem, res.trajectory, polish=b.polish, flat_tol=float(st["flat_tol"]),
                               min_decades=float(st["min_decades"]), zero_tol=cfg.analysis.zero_tol,
                               global_loss_tol=cfg.analysis.global_loss_tol)
        t2 = time.perf_counter()
    except ValueError as e:
        raise ConfigError(f"{config_path}: {e}") from None
    visits = seq.table()
    levels = seq.levels()
    print(visits.to_string(float_format=lambda v: f"{v:.6g}"))
    print("distinct certified critical points visited:")
    print(levels.to_string(float_format=lambda v: f"{v:.10g}"))
    numbers = {"config": str(config_path), "settings": st, "tol": seq.tol,
               "visits": json.loads(visits.to_json(orient="records")),
               "levels": json.loads(levels.to_json(orient="records")), "ts": seq.ts.tolist(),
               "loss": np.where(np.isfinite(seq.loss), seq.loss, None).tolist(),
               "timings": {"flows_s": t1 - t0, "plateaus_s": t2 - t1}}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ok = seq.ts > 0
    for r in range(seq.loss.shape[0]):
        ax.plot(seq.ts[ok], seq.loss[r, ok], "-", color=colors[r % len(colors)], lw=1, alpha=0.8)
    labelled = set()
    for v in seq.visits:
        c = colors[v.trajectory % len(colors)]
        tm = float(np.sqrt(v.t_start * v.t_end))
        ax.plot([v.t_start, v.t_end], [v.plateau_loss] * 2, "-", color=c, lw=5, alpha=0.3)
        ax.plot(tm, v.loss, "o" if v.certified else "x", color=c, ms=6)
        label = f"{v.kind} i{v.index} r{v.reduced_width}, L = {v.loss:.4g}" if v.certified else "not certified"
        key = (f"{v.loss:.6g}", label)
        if key not in labelled:  # one label per distinct critical point
            labelled.add(key)
            ax.annotate(label, (tm, v.loss), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="time t", ylabel="loss",
           title=f"saddle-to-saddle: plateaus certified at |grad L| <= {seq.tol:g} (i = index, r = reduced width)")
    return _save(fig, numbers, Path(out_dir), "saddle_to_saddle")
