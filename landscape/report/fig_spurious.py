"""Figures of the spurious-minima study (issue 12; README science section 2): ``spurious-minima``, ``hessian-spectra``.

Both read the census written by ``experiments/spurious_census.py`` into ``results/spurious_census`` under the
working directory (``census.json``, and ``followed.json`` from its ``--follow-only`` stage when present). When no
census is stored they run a small fresh one through the same script
(``--quick``: d = 5, 6, 64 initialisations, families followed to d = 9; without
it the config's CPU sizes) and draw from that.

- ``spurious-minima``: (left) the fraction of initialisations ending at spurious minima against d, per method and
  for k = d + 1, with 95 % Wilson intervals; (right) d * loss of every followed family against d, minima filled,
  saddles open (the saddle-to-minimum transitions of Arjevani & Field).
- ``hessian-spectra``: (1) Hessian eigenvalue groups against d at the global minimum W = I and at each followed
  family (marker area ~ multiplicity): a bulk at a few small constants and Theta(d) eigenvalues growing
  linearly; (2) global against spurious spectra at the largest census d (eigenvalue, multiplicity); (3) the
  stochastic-Lanczos-quadrature density of the Hessian of a deep MLP on a finite sample (>= 100k parameters;
  ``--quick``: ~10k), drawn matrix-free (:mod:`landscape.analysis.krylov`).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["spurious_minima", "hessian_spectra", "load_census", "mlp_density"]

RESULTS = Path("results/spurious_census")


def load_census(config_path: Path | None, *, quick: bool, results: Path = RESULTS) -> dict:
    """The stored census (``results/census.json``), or a fresh small one run by experiments/spurious_census.py."""
    path = results / "census.json"
    if path.is_file():
        print(f"reading {path}")
        census = json.loads(path.read_text())
        extra = results / "followed.json"  # written by ``spurious_census.py --follow-only``: it takes precedence
        if extra.is_file():
            print(f"reading {extra}")
            census.update({k: v for k, v in json.loads(extra.read_text()).items() if k != "log"})
        return census
    script = Path(__file__).resolve().parents[2] / "experiments" / "spurious_census.py"
    if not script.is_file():
        raise FileNotFoundError(f"no stored census at {path} and no {script} to run one; run "
                                "experiments/spurious_census.py first")
    spec = importlib.util.spec_from_file_location("spurious_census", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--out", str(results)] + (["--config", str(config_path)] if config_path else [])
    argv += ["--quick"] if quick else []
    print(f"no stored census: running {script.name} {' '.join(argv)}")
    if mod.main(argv) != 0:
        raise RuntimeError("the census run failed")
    return json.loads(path.read_text())


def _save(fig, out_dir: Path, name: str, numbers: dict) -> list[Path]:
    import matplotlib.pyplot as plt

    png, js = out_dir / f"{name}.png", out_dir / f"{name}.json"
    fig.savefig(png, dpi=130, bbox_inches="tight")
    plt.close(fig)
    js.write_text(json.dumps(numbers, indent=1, default=str))
    return [png, js]


def spurious_minima(config_path: Path | None, out_dir: Path, *, quick: bool) -> list[Path]:
    """Rates against d with intervals, and d * loss of the followed families (module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    census = load_census(config_path, quick=quick)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    series: dict[str, list] = {}
    for r in census["rates"]:
        label = f"{r['method']}, k = d" + (" + 1" if r["k"] > r["d"] else "")
        series.setdefault(label, []).append(r)
    print(f"{'case':<26}{'d':>4}{'n':>7}{'spurious':>10}{'95% interval':>22}{'saddles':>9}{'other':>8}")
    for label, rows in series.items():
        d = np.array([r["d"] for r in rows])
        p = np.array([r["spurious_rate"] for r in rows])
        lo = np.array([r["spurious_ci"][0] for r in rows])
        hi = np.array([r["spurious_ci"][1] for r in rows])
        ax1.errorbar(d, p, yerr=[p - lo, hi - p], marker="o", capsize=3, label=label)
        for r in rows:
            print(f"{label:<26}{r['d']:>4}{r['n']:>7}{r['spurious_rate']:>10.4f}   [{r['spurious_ci'][0]:.4f}, "
                  f"{r['spurious_ci'][1]:.4f}]{r['saddle_rate']:>9.4f}{r['other_rate']:>8.4f}")
    ax1.set_xlabel("d = k (teacher neurons)")
    ax1.set_ylabel("fraction ending at spurious minima")
    ax1.set_title("spurious minima (95 % Wilson intervals)")
    ax1.legend(fontsize=8)
    for tr in census["followed"]:
        d = np.array([p["d"] for p in tr["points"]])
        y = np.array([p["d_loss"] for p in tr["points"]])
        minimum = np.array([p["kind"] == "minimum" for p in tr["points"]])
        line, = ax2.plot(d, y, "-", lw=1, label=tr["label"])
        ax2.plot(d[minimum], y[minimum], "o", ms=4, color=line.get_color())
        ax2.plot(d[~minimum], y[~minimum], "o", ms=4, mfc="none", color=line.get_color())
        print(f"family {tr['label']}: d = {d[0]}..{d[-1]}, d*loss {y[0]:.6f} -> {y[-1]:.6f}, "
              f"transitions {tr['transitions']}")
    ax2.set_xlabel("d")
    ax2.set_ylabel("d * loss")
    ax2.set_title("families followed in d (filled: minimum, open: saddle)")
    ax2.legend(fontsize=6)
    numbers = {"rates": census["rates"], "followed": [{k: v for k, v in tr.items() if k != "points"} | {
        "d": [p["d"] for p in tr["points"]], "d_loss": [p["d_loss"] for p in tr["points"]],
        "kind": [p["kind"] for p in tr["points"]]} for tr in census["followed"]],
        "families": census["families"]}
    return _save(fig, out_dir, "spurious-minima", numbers)


def mlp_density(*, quick: bool, seed: int = 0) -> dict:
    """SLQ density of the Hessian of a ReLU MLP student on a finite Gaussian sample, at its initialisation.

    Full size: d = 50, hidden widths (300, 300), n = 1000 samples, P = 105,300 (4 probes x 64 Lanczos steps);
    ``quick``: d = 20, (80, 80), n = 400, P = 8,080 (4 x 40).
    """
    import jax

    from .. import problem as _p  # noqa: F401  (float64 on)
    from ..analysis.krylov import hessian_density
    from ..flow.init import GaussianInit
    from ..problem import MLP, ReLU, SampleLoss, Teacher, TeacherStudent

    d, widths, n, probes, m = (20, (80, 80), 400, 4, 40) if quick else (50, (300, 300), 1000, 4, 64)
    key = jax.random.PRNGKey(seed)
    problem = TeacherStudent(Teacher.gaussian(d=d, width=4, key=jax.random.fold_in(key, 1)),
                             MLP(hidden_widths=widths, activation=ReLU()),
                             SampleLoss.gaussian(n=n, d=d, key=jax.random.fold_in(key, 2)))
    theta = GaussianInit(1.0).sample(jax.random.fold_in(key, 3), problem)
    t0 = time.perf_counter()
    sd = jax.jit(lambda th: hessian_density(problem, th, key=jax.random.fold_in(key, 4), num_probes=probes,
                                            num_matvecs=m))(theta)
    sd = jax.device_get(sd)
    seconds = time.perf_counter() - t0
    p = int(sd.dim)
    lo, hi = (float(x) for x in sd.support())
    return {"params": p, "d": d, "hidden_widths": list(widths), "n_samples": n, "probes": probes, "num_matvecs": m,
            "seconds": seconds, "support": [lo, hi], "trace_estimate": float(sd.trace()),
            "nodes": np.asarray(sd.nodes).tolist(), "weights": np.asarray(sd.weights).tolist()}


def hessian_spectra(config_path: Path | None, out_dir: Path, *, quick: bool) -> list[Path]:
    """Eigenvalue groups against d, global against spurious spectra, and an SLQ density (module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    census = load_census(config_path, quick=quick)
    paths = []
    # (1) groups against d
    fig, ax = plt.subplots(figsize=(7, 5))
    for g in census["global_minimum"]:
        vals = np.array([v for v, _ in g["spectrum"]])
        mult = np.array([m for _, m in g["spectrum"]])
        ax.scatter(np.full(vals.shape, g["d"]) - 0.12, vals, s=8 + 4 * np.sqrt(mult), c="k", marker="o",
                   label="global minimum W = I" if g is census["global_minimum"][0] else None)
    for i, tr in enumerate(census["followed"]):
        first = True
        for p in tr["points"]:
            if p["spectrum"] is None:
                continue
            vals = np.array([v for v, _ in p["spectrum"]])
            mult = np.array([m for _, m in p["spectrum"]])
            ax.scatter(np.full(vals.shape, p["d"]) + 0.12 * (i + 1), vals, s=8 + 4 * np.sqrt(mult), marker="x",
                       color=f"C{i % 10}", label=tr["label"] if first else None)
            first = False
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel("d")
    ax.set_ylabel("Hessian eigenvalue (marker area ~ multiplicity)")
    ax.set_title("Hessian eigenvalue groups against d")
    ax.legend(fontsize=6)
    last = census["global_minimum"][-1]
    print(f"global minimum at d = {last['d']}: groups (value, multiplicity) {last['spectrum']}")
    paths += _save(fig, out_dir, "hessian-spectra-vs-d", {"global_minimum": census["global_minimum"], "followed": [
        {"label": tr["label"], "spectra": {p["d"]: p["spectrum"] for p in tr["points"] if p["spectrum"]}}
        for tr in census["followed"]]})
    # (2) global against spurious at the largest census d
    d_max = max(r["d"] for r in census["rates"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    glob = next((g for g in census["global_minimum"] if g["d"] == d_max), None)
    compared = {}
    if glob is not None:
        v, m = zip(*glob["spectrum"], strict=True)
        ax.stem(v, m, linefmt="k-", markerfmt="ko", basefmt=" ", label="global minimum W = I")
        compared["global"] = glob["spectrum"]
    spurious = [f for f in census["families"] if f["d"] == d_max and f["k"] == f["d"] and f["kind"] == "minimum"]
    for j, f in enumerate(spurious[:4]):
        v, m = zip(*f["spectrum"], strict=True)
        ax.stem(np.asarray(v) * (1 + 0.02 * (j + 1)), m, linefmt=f"C{j}-", markerfmt=f"C{j}x", basefmt=" ",
                label=f"spurious {f['isotropy_name']}, loss {f['loss']:.3e}")
        compared[f"spurious {f['isotropy_name']} {f['loss']:.6e}"] = f["spectrum"]
        print(f"d = {d_max} spurious {f['isotropy_name']} loss {f['loss']:.12e}: {len(f['spectrum'])} groups, "
              f"eig [{f['min_eig']:.6e}, {f['max_eig']:.6e}]")
    ax.set_xscale("symlog", linthresh=1e-2)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("multiplicity")
    ax.set_title(f"global and spurious Hessian spectra at d = k = {d_max}")
    ax.legend(fontsize=7)
    paths += _save(fig, out_dir, "hessian-spectra-global-vs-spurious", {"d": d_max, "spectra": compared})
    # (3) SLQ density of a big MLP (stored beside the census when computed at full size)
    stored = RESULTS / "mlp_density.json"
    if not quick and stored.is_file():
        print(f"reading {stored}")
        dens = json.loads(stored.read_text())
    else:
        dens = mlp_density(quick=quick)
        if not quick and RESULTS.is_dir():
            stored.write_text(json.dumps(dens))
    lo, hi = dens["support"]
    grid = np.linspace(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), 2000)
    nodes, weights = np.asarray(dens["nodes"]), np.asarray(dens["weights"])
    sigma = 0.01 * (hi - lo)
    phi = np.mean(np.sum(weights[:, None, :] * np.exp(-0.5 * ((grid[None, :, None] - nodes[:, None, :]) / sigma)
                                                             ** 2), axis=2), axis=0) / np.sqrt(2 * np.pi * sigma**2)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.semilogy(grid, np.maximum(phi, 1e-12))
    ax.set_ylim(1e-8, None)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (SLQ, Gaussian width 1 % of support)")
    ax.set_title(f"Hessian density, ReLU MLP {dens['hidden_widths']}, P = {dens['params']:,}, "
                 f"n = {dens['n_samples']} ({dens['seconds']:.0f} s)")
    print(f"SLQ density: P = {dens['params']}, support [{lo:.4e}, {hi:.4e}], trace ~ {dens['trace_estimate']:.4e}, "
          f"{dens['probes']} probes x {dens['num_matvecs']} matvecs in {dens['seconds']:.1f} s")
    paths += _save(fig, out_dir, "hessian-density-mlp", {k: v for k, v in dens.items()})
    return paths
