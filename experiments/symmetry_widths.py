"""Width study of the symmetry analyzer (issue 3, Done-when): teacher widths r* = 2..4, students m = r* .. r* + 3.

For each (r*, m): many flows (adam), LM polish, Hessians and the symmetry analysis through the library pipeline
(:func:`landscape.explore` on the objects a config builds); prints per m the classes reached by certified points,
measured versus predicted null dimensions, and the number of distinct subspaces reached against T(r*, m) and G(r, m);
draws observed versus predicted subspace counts (``--figure``).

    python experiments/symmetry_widths.py [--count 24] [--steps 8000] [--figure symmetry_widths.png]

Smooth activation without sign or scaling symmetry (sigmoid4_softplus), Gaussian teacher with Gaussian output
weights, large-sample loss (n inputs x ~ N(0, I_d)).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import jax
import numpy as np

import landscape as ls
from landscape.analysis.symmetry import count_T, summarize
from landscape.analysis.symmetry.reduce import Tolerances
from landscape.config import build, config_from_dict
from landscape.report.symmetry_figures import plot_subspace_counts


def config(r_star, m, args):
    return config_from_dict({
        "problem": {"input_dim": args.input_dim, "activation": args.activation, "loss": "sample",
                    "n_samples": args.n_samples, "data_seed": 0},
        "teacher": {"width": r_star, "kind": "gaussian", "output_weights": "gaussian", "seed": args.teacher_seed},
        "student": {"width": m},
        "init": {"count": args.count, "scale": 1.0, "seed": 0},
        "flow": {"method": "adam", "lr": args.lr, "steps": args.steps, "grad_tol": 1e-9},
        "polish": {"tol": 1e-10, "max_iter": args.polish_iter},
        "analysis": {"zero_tol": 1e-7, "global_loss_tol": 1e-20},
    })


def dims_text(rows) -> str:
    """'predicted/measured xcount' pairs, most common first."""
    c = Counter(zip(rows["predicted_dim"], rows["null_dim_measured"], strict=True))
    return " ".join(f"{p}/{q}x{n}" for (p, q), n in c.most_common(4))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--r-stars", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--extra", type=int, default=3, help="h: students m = r* .. r* + h")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--polish-iter", type=int, default=300)
    ap.add_argument("--input-dim", type=int, default=4)
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--activation", default="sigmoid4_softplus")
    ap.add_argument("--teacher-seed", type=int, default=1)
    ap.add_argument("--figure", default="")
    ap.add_argument("--json", default="", help="write the records as JSON here")
    args = ap.parse_args(argv)
    tol = Tolerances()
    records = []
    header = (f"{'r*':>3}{'m':>3}{'cert':>6}  {'classes (certified)':<44}{'glob sub/T':>12}{'orbits':>7}"
              f"{'sym sub/pred':>14}  {'dims glob pred/meas':<22}{'jac ok':>7}  {'dims sym pred/meas':<20}")
    lines = [header]
    for r_star in args.r_stars:
        for m in range(r_star, r_star + args.extra + 1):
            cfg = config(r_star, m, args)
            t0 = time.perf_counter()
            b = build(cfg)
            rows = ls.explore(b.problem, b.flow, key=jax.random.PRNGKey(b.seed), n=args.count, init=b.init,
                              polish=b.polish, analyzers=b.analyzers).table()
            cert = rows[rows["certified"]]
            P = b.problem
            cols = {c: cert[c].to_numpy() for c in ("sym_class", "reduced_width", "n_zero_neurons", "subspace_label",
                                                    "subspace_id", "kind", "null_dim_excess")}
            summ = summarize(cols, P, teacher_width=r_star, tol=tol, zero_tol=1e-7, global_loss_tol=1e-20)
            glob = cert[cert["sym_class"] == "global_minimum"]
            sym = cert[cert["sym_class"] == "symmetry_induced"]
            sym_sub = [s for s in summ["subspaces"] if s["class"] == "symmetry_induced"]
            sym_obs = sum(s["distinct_subspaces"] for s in sym_sub)
            sym_pred = sum(s["predicted_subspaces"] for s in sym_sub)
            classes = ", ".join(f"{k} {v}" for k, v in Counter(
                f"{c}({k})" for c, k in zip(cert["sym_class"], cert["kind"], strict=True)).most_common())
            jac_ok = int(np.sum(glob["jacobian_null_pred"] == glob["null_dim_measured"]))
            rec = {"r_star": r_star, "m": m, "n": int(len(rows)), "certified": int(len(cert)),
                   "T": count_T(r_star, m), "global_observed": int(glob["subspace_id"].nunique()),
                   "global_orbits": int(glob["subspace_label"].nunique()), "sym_observed": sym_obs,
                   "sym_predicted": sym_pred, "classes": dict(Counter(cert["sym_class"])),
                   "kinds": dict(Counter(cert["kind"])), "jac_ok": jac_ok, "n_global": int(len(glob)),
                   "dims_global": dims_text(glob), "dims_sym": dims_text(sym),
                   "explained_all": int(np.sum(cert["null_dim_excess"] == 0)), "subspaces": summ["subspaces"],
                   "seconds": time.perf_counter() - t0}
            records.append(rec)
            line = (f"{r_star:>3}{m:>3}{len(cert):>4}/{len(rows):<2}  {classes:<44}"
                    f"{rec['global_observed']:>6}/{rec['T']:<5}{rec['global_orbits']:>7}"
                    f"{sym_obs:>7}/{sym_pred:<6}  {rec['dims_global']:<22}{jac_ok:>3}/{len(glob):<3}  "
                    f"{rec['dims_sym']:<20}")
            lines.append(line)
            print(line, f"  ({rec['seconds']:.0f} s)", flush=True)
    print()
    print("\n".join(lines))
    print("classes: global_minimum (G), symmetry_induced (S), other (O), with the refined Hessian kind; "
          "glob sub/T: distinct global-minimum subspaces reached / T(r*, m); orbits: distinct labels (up to "
          "permutation); sym sub/pred: distinct symmetry-induced subspaces / C(m, z) G(r, m - z) summed over the "
          "reduced points reached; dims: predicted subspace dim / measured Hessian null dim x count; jac ok: global "
          "minima whose null dim equals the predicted dim null J")
    if args.figure:
        print("figure:", plot_subspace_counts(records, args.figure))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
