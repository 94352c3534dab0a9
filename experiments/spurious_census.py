"""Spurious-minima census of the orthonormal-teacher ReLU problem (issue 12; README science section 2).

For each d in ``[census] dims`` and each flow method (gradient flow, plain GD): ``count`` Xavier initialisations,
k = d student neurons with output weights fixed to one, exact population loss; every end point polished and
certified (|grad| <= polish.tol), classified from its dense Hessian, its isotropy in S_k x S_d computed. Per d and
method it prints the fraction of initialisations ending at spurious minima (certified minima with loss >
global_loss_tol) with a 95 % Wilson interval, the fractions at saddles and not certified, and the families found
(deduplicated modulo S_k x S_d; each representative polished in its fixed-point space to |grad| <= 1e-13, with
loss, d * loss, multiplicity, isotropy, gradient norm and extreme eigenvalues). The same for n = k + 1 students
(``extra_neuron``). Then the families are followed from their largest census d up to ``follow_to`` (pattern
extrapolation + polishing in Fix(G)), and the global minimum W = I_d is certified at every d.

Writes ``OUT/census.json`` (everything printed, spectra grouped with multiplicities) and ``OUT/families.npz``
(representatives by family, and followed points by d), which ``landscape figure spurious-minima`` and
``landscape figure hessian-spectra`` read.

    python experiments/spurious_census.py [--config configs/spurious_census.toml] [--out results/spurious_census]
        [--dims 6 7 8 9] [--count 1000] [--methods gradient_flow gd] [--follow-to 50] [--gpu] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import jax
import numpy as np

import landscape as ls
from landscape.analysis.families import certify_point, deduplicate, follow, group_spectrum
from landscape.config import ConfigError, build, config_from_dict

CENSUS_DEFAULTS = {"methods": ["gradient_flow", "gd"], "extra_neuron": True, "extra_count": 250,
                   "gpu_dims": list(range(6, 21)), "gpu_count": 10000, "gpu_chunk": 2000, "family_tol": 1e-6,
                   "family_grad_tol": 1e-13, "follow_to": 50, "spectrum_up_to": 20, "chunk": 250}
"""Census settings not in the config (flags override them): methods, the k = d + 1 case, family tolerances."""


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    den = 1 + z**2 / n
    mid = (p + z**2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def read_config(path: Path) -> tuple[dict, dict]:
    """(census settings, base landscape config dict without [sweep]); bad input is one ConfigError line.

    d comes from the sweep's zip (``problem.input_dim``), the count per d from ``init.count``.
    """
    from landscape.config import read_raw_config

    raw = read_raw_config(path, [])
    config_from_dict(raw)  # the config must be valid as it stands (a `landscape run` sweep)
    sweep = raw.pop("sweep", {})
    dims = {**sweep.get("zip", {}), **sweep.get("grid", {})}.get("problem.input_dim", [raw["problem"]["input_dim"]])
    if not (isinstance(dims, list) and dims and all(isinstance(d, int) and 2 <= d <= 64 for d in dims)):
        raise ConfigError(f"sweep problem.input_dim = {dims!r} must be a list of integers in 2..64, e.g. [6, 7, 8, 9]")
    census = {**CENSUS_DEFAULTS, "dims": dims, "count": int(raw.get("init", {}).get("count", 1000))}
    return census, raw


def case_config(base: dict, d: int, k: int, method: str, count: int, seed: int):
    raw = {s: dict(v) for s, v in base.items()}
    raw["problem"]["input_dim"] = d
    raw["teacher"].update(kind="orthonormal", width=d, output_weights="ones")
    raw["student"].update(width=k, bias=False, train_output_weights=False, output_weights=1.0)
    raw["init"].update(count=count, seed=seed)
    raw["flow"]["method"] = method
    return config_from_dict(raw)


def pattern_name(name: str, d: int) -> str:
    """An isotropy name with the sizes above d / 2 written as d - j: the same family at every d."""
    return re.sub(r"S_(\d+)", lambda m: f"S_{{d-{d - int(m.group(1))}}}" if int(m.group(1)) > d / 2 else m.group(0),
                  name).replace("{d-0}", "d")


def run_case(base, d, extra, method, count, chunk, seed, log=None):
    """explore in chunks; returns the table, the end weights of every initialisation, the problem, the config and
    explore's stage timings summed over the chunks (seconds)."""
    cfg = case_config(base, d, d + extra, method, count, seed)
    b = build(cfg)
    key = jax.random.PRNGKey(cfg.init.seed)
    tables, ws, stages = [], [], {}
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        res = ls.explore(b.problem, b.flow, key=key, n=n, init=b.init, polish=b.polish, analyzers=b.analyzers,
                         start=start)
        tables.append(res.table())
        ws.append(np.asarray(res.points.theta["w"]))
        for name, sec in res.timings.items():
            if name.endswith("_s"):
                stages[name[:-2]] = stages.get(name[:-2], 0.0) + float(sec)
        if log is not None:
            log(f"    d = {d} k = {d + extra} {method}: {start + n}/{count} done; this chunk's stages "
                + " ".join(f"{k[:-2]}={v:.1f}" for k, v in res.timings.items() if k.endswith("_s")))
    import pandas as pd

    return pd.concat(tables, ignore_index=True), np.concatenate(ws), b.problem, cfg, stages


def summarize_case(table, ws, problem, census, cfg, d, extra, method, log):
    n = len(table)
    cert = table["certified"].to_numpy(bool)
    kind = table["kind"].to_numpy(str)
    glob = table["is_global"].to_numpy(bool)
    spurious = cert & (kind == "minimum") & ~glob
    saddle = cert & (kind == "saddle")
    other = ~(cert & ((kind == "minimum") | (kind == "saddle")))
    lo, hi = wilson(int(spurious.sum()), n)
    row = {"d": d, "k": d + extra, "method": method, "n": n, "spurious": int(spurious.sum()),
           "spurious_rate": float(spurious.mean()), "spurious_ci": [lo, hi], "global": int((cert & glob).sum()),
           "saddle": int(saddle.sum()), "saddle_rate": float(saddle.mean()), "not_certified_or_degenerate":
           int(other.sum()), "other_rate": float(other.mean()), "max_grad_norm_certified":
           float(table["grad_norm"][cert].max()) if cert.any() else float("nan")}
    log(f"d = {d}  k = {d + extra}  {method:<13} n = {n}  spurious {row['spurious_rate']:.4f} "
        f"[{lo:.4f}, {hi:.4f}]  global {row['global']}  saddles {row['saddle_rate']:.4f}  "
        f"not certified/degenerate {row['other_rate']:.4f}  "
        f"(max |grad| certified {row['max_grad_norm_certified']:.1e})")
    idx = np.flatnonzero(cert & ~glob & ((kind == "minimum") | (kind == "saddle")))
    groups = deduplicate([ws[i] for i in idx], table["loss"].to_numpy(float)[idx], tol=census["family_tol"])
    fams = []
    for g in groups:
        members = idx[g]
        rep = certify_point(problem, ws[members[0]], tol=census["family_grad_tol"], zero_tol=cfg.analysis.zero_tol,
                            iso_tol=census["family_tol"])
        fams.append({"d": d, "k": d + extra, "method": method, "multiplicity": len(members),
                     "rate": len(members) / n, "loss": rep.loss, "d_loss": d * rep.loss, "kind": rep.kind,
                     "index": rep.index, "isotropy_order": str(rep.iso.order), "isotropy_name": rep.iso.name,
                     "grad_norm": rep.grad_norm, "min_eig": float(rep.eigenvalues[0]),
                     "max_eig": float(rep.eigenvalues[-1]), "orbit_size": str(rep.orbit_size),
                     "spectrum": group_spectrum(rep.eigenvalues), "_w": rep.w})
        log(f"    family loss {rep.loss:.12e}  d*loss {d * rep.loss:.9f}  x{len(members):<5} {rep.kind:<10}"
            f"{rep.iso.name:<22} |grad| {rep.grad_norm:.1e}  eig [{rep.eigenvalues[0]:+.6e}, "
            f"{rep.eigenvalues[-1]:.6e}]")
    return row, fams


def _write(out, census, rows, families, followed, global_min, timings, census_s, lines, *, t_start=None) -> float:
    """census.json (everything printed) and families.npz (representatives); rewritten after every stage."""
    total = time.perf_counter() - t_start if t_start is not None else census_s
    fams_json = [{k: v for k, v in f.items() if not k.startswith("_")} for f in families]
    summary = {"settings": dict(census), "rates": rows, "families": fams_json, "followed": followed,
               "global_minimum": global_min, "timings_s": timings, "census_s": census_s, "total_s": total,
               "device": str(jax.devices()[0]), "log": lines}
    (out / "census.json").write_text(json.dumps(summary, indent=1, default=str))
    np.savez(out / "families.npz", **{f"family{i}_d{f['d']}_k{f['k']}_{f['method']}": f["_w"]
                                      for i, f in enumerate(families)})
    return total


def follow_stage(census: dict, families: list, log, timings: dict):
    """Distinct families, each followed from its largest census d to ``follow_to``, and W = I certified at every d.

    Returns (distinct families, followed tracks, global minima) as JSON-able lists (families keep ``_w``).
    """
    # distinct families across methods, per (k - d, isotropy name, loss level)
    distinct: dict[tuple, dict] = {}
    for f in families:
        key = (f["k"] - f["d"], f["d"], f["isotropy_name"], round(f["loss"], 9))
        if key in distinct:
            distinct[key]["multiplicity"] += f["multiplicity"]
            distinct[key]["methods"] = sorted(set(distinct[key]["methods"]) | {f["method"]})
        else:
            distinct[key] = {**f, "methods": [f["method"]]}
    # follow each family (k = d) from its largest census d; one start per (isotropy name, loss rank at that d)
    t0 = time.perf_counter()
    starts, labels = [], []
    for extra in sorted({e for e, *_ in distinct}):
        best: dict[tuple, dict] = {}  # (isotropy pattern in d, loss rank within the pattern) -> largest-d family
        per_d: dict[tuple, int] = {}
        for (e, d, name, _loss), f in sorted(distinct.items(), key=lambda kv: (kv[0][1], kv[0][3])):
            if e != extra:
                continue
            pattern = pattern_name(name, d)
            rank = per_d.get((pattern, d), 0)
            per_d[(pattern, d)] = rank + 1
            best[(pattern, rank)] = f  # sorted by d: the largest d wins
        for (pattern, _), f in best.items():
            starts.append((extra, f["_w"]))
            labels.append(f"k=d+{extra} {pattern} from d={f['d']} ({f['isotropy_name']}, {f['kind']})")
    tracks_out: list[dict] = []
    for extra in sorted({e for e, _ in starts}):
        sel = [i for i, (e, _) in enumerate(starts) if e == extra]
        ws_start = [starts[i][1] for i in sel]
        try:
            tracks = follow(ws_start, d_to=census["follow_to"], extra=extra, tol=census["family_grad_tol"],
                            iso_tol=census["family_tol"], spectrum_up_to=census["spectrum_up_to"],
                            log=lambda s, e=extra: log(f"  [k=d+{e}] {s}"))
        except ValueError as err:  # a pattern with nothing to grow
            log(f"  [k=d+{extra}] cannot follow: {err}")
            continue
        for i, tr in zip(sel, tracks, strict=True):
            prev_kind, transitions = None, []
            for p in tr:
                if p.kind == "unclassified":
                    continue
                if prev_kind is not None and p.kind != prev_kind:
                    transitions.append({"d": int(p.w.shape[1]), "from": prev_kind, "to": p.kind})
                prev_kind = p.kind
            tracks_out.append({"label": labels[i], "extra": extra, "transitions": transitions, "points": [
                {"d": int(p.w.shape[1]), "loss": p.loss, "d_loss": p.w.shape[1] * p.loss, "grad_norm": p.grad_norm,
                 "kind": p.kind, "index": p.index, "isotropy": p.iso.name, "min_eig": float(p.eigenvalues[0]),
                 "max_eig": float(p.eigenvalues[-1]), "spectrum": group_spectrum(p.eigenvalues)
                 if p.w.shape[1] <= census["spectrum_up_to"] else None} for p in tr]})
            log(f"  followed {labels[i]}: d = {tr[0].w.shape[1]}..{tr[-1].w.shape[1]}, kind changes: {transitions}")
    timings["follow_s"] = time.perf_counter() - t0

    # the global minimum W = I at every d, followed like a family (extend: I_d -> I_{d+1})
    t0 = time.perf_counter()
    (track,) = follow([np.eye(min(census["dims"]))], d_to=census["follow_to"], tol=census["family_grad_tol"],
                      iso_tol=census["family_tol"])
    global_min = [{"d": int(p.w.shape[1]), "loss": p.loss, "grad_norm": p.grad_norm, "kind": p.kind,
                   "isotropy": p.iso.name, "spectrum": group_spectrum(p.eigenvalues)} for p in track]
    timings["global_s"] = time.perf_counter() - t0
    log(f"global minima W = I certified for d = {global_min[0]['d']}..{global_min[-1]['d']}")

    return list(distinct.values()), tracks_out, global_min


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/spurious_census.toml")
    ap.add_argument("--out", default="results/spurious_census")
    ap.add_argument("--dims", type=int, nargs="+")
    ap.add_argument("--count", type=int)
    ap.add_argument("--extra-count", type=int)
    ap.add_argument("--methods", nargs="+")
    ap.add_argument("--follow-to", type=int)
    ap.add_argument("--chunk", type=int, help="initialisations per explore call (default 250; --gpu: 2000)")
    ap.add_argument("--no-extra", action="store_true", help="skip the n = k + 1 case")
    ap.add_argument("--extra-only", action="store_true", help="only the n = k + 1 case")
    ap.add_argument("--gpu", action="store_true", help="use gpu_dims and gpu_count")
    ap.add_argument("--follow-only", action="store_true",
                    help="follow the families stored in OUT (census.json, families.npz); write OUT/followed.json")
    ap.add_argument("--quick", action="store_true", help="d = 5, 6, 64 initialisations, gradient flow, follow to 9")
    args = ap.parse_args(argv)
    ls.use_cpu_cores()  # as `landscape run` does: the flows' lanes split over the cores
    try:
        census, base = read_config(Path(args.config))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.gpu:
        census["dims"], census["count"], census["chunk"] = census["gpu_dims"], census["gpu_count"], census["gpu_chunk"]
    if args.quick:
        census.update(dims=[5, 6], count=64, extra_count=64, methods=["gradient_flow"], follow_to=9, chunk=64)
    for key, val in (("dims", args.dims), ("count", args.count), ("extra_count", args.extra_count),
                     ("methods", args.methods), ("follow_to", args.follow_to), ("chunk", args.chunk)):
        if val is not None:
            census[key] = val
    if args.no_extra:
        census["extra_neuron"] = False
    for key in ("count", "extra_count", "chunk"):
        if int(census[key]) < 1:
            print(f"error: --{key.replace('_', '-')} = {census[key]} must be a positive integer", file=sys.stderr)
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []

    def log(s):
        print(s, flush=True)
        lines.append(s)

    t_start = time.perf_counter()
    if args.follow_only:
        stored = json.loads((out / "census.json").read_text())
        arrays = np.load(out / "families.npz")
        families = stored["families"]
        for i, f in enumerate(families):
            f["_w"] = arrays[f"family{i}_d{f['d']}_k{f['k']}_{f['method']}"]
        timings = {}
        _, tracks_out, global_min = follow_stage(census, families, log, timings)
        (out / "followed.json").write_text(json.dumps({"followed": tracks_out, "global_minimum": global_min,
                                                       "timings_s": timings, "log": lines}, indent=1, default=str))
        log(f"wrote {out / 'followed.json'} ({time.perf_counter() - t_start:.0f} s)")
        return 0
    rows, families, timings = [], [], {}
    cases = [] if args.extra_only else [(d, 0, m, census["count"]) for d in census["dims"] for m in census["methods"]]
    if census["extra_neuron"]:
        cases += [(d, 1, m, census["extra_count"]) for d in census["dims"] for m in census["methods"][:1]]
    base_cfg = None
    for d, extra, method, count in cases:
        t0 = time.perf_counter()
        table, ws, problem, cfg, stages = run_case(base, d, extra, method, count, census["chunk"],
                                                   seed=1000 * d + extra, log=print)
        base_cfg = base_cfg or cfg
        row, fams = summarize_case(table, ws, problem, census, cfg, d, extra, method, log)
        row["seconds"] = time.perf_counter() - t0
        row["stages_s"] = stages
        timings[f"d{d}_k{d + extra}_{method}"] = row["seconds"]
        log(f"    ({row['seconds']:.0f} s; explore stages " + " ".join(f"{k}={v:.1f}" for k, v in stages.items()) + ")")
        rows.append(row)
        families += fams
        _write(out, census, rows, families, [], [], timings, time.perf_counter() - t_start, lines)
    census_s = time.perf_counter() - t_start
    log(f"census: {census_s:.0f} s")

    distinct, tracks_out, global_min = follow_stage(census, families, log, timings)
    total = _write(out, census, rows, distinct, tracks_out, global_min, timings, census_s, lines,
                   t_start=t_start)
    log(f"wrote {out / 'census.json'} and {out / 'families.npz'}  (total {total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
