"""Run summaries: counts per kind, loss levels, tolerances, timings, device and versions; and the printed table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.classify import KINDS
from ..analysis.levels import LEVEL_ABS_TOL, LEVEL_REL_TOL, merge_levels
from ..store import environment

__all__ = ["summarize", "format_summary", "loss_levels", "environment", "group_eigenvalues"]


def loss_levels(table: pd.DataFrame, *, rel_tol: float = LEVEL_REL_TOL, abs_tol: float = LEVEL_ABS_TOL) -> list[dict]:
    """Distinct loss values among certified points, merged by :func:`~landscape.analysis.levels.merge_levels`.

    Each level lists its loss (the smallest in the group), the number of points and their kinds (saddles by index).
    """
    cert = table[table["certified"].astype(bool)]
    loss = cert["loss"].to_numpy(float)
    kind = cert["kind"].astype(str).to_numpy()
    index = cert["index"].to_numpy()
    levels: list[dict] = []
    for group in merge_levels(loss, rel_tol=rel_tol, abs_tol=abs_tol):
        kinds: dict = {}
        for i in group:
            label = f"saddle(index {index[i]})" if kind[i] == "saddle" else kind[i]
            kinds[label] = kinds.get(label, 0) + 1
        levels.append({"loss": float(loss[group[0]]), "count": len(group), "kinds": kinds})
    return levels


def group_eigenvalues(eigs, *, zero_tol_abs: float, rel_tol: float = 1e-6) -> list[dict]:
    """Group sorted eigenvalues into clusters with multiplicities.

    Consecutive eigenvalues join a cluster when they differ by at most ``max(zero_tol_abs, rel_tol * |lambda|)``;
    each cluster reports its mean, multiplicity and [min, max].
    """
    e = np.sort(np.asarray(eigs, float))
    groups: list[list[float]] = []
    for x in e:
        if groups and abs(x - groups[-1][-1]) <= max(zero_tol_abs, rel_tol * abs(x)):
            groups[-1].append(x)
        else:
            groups.append([x])
    return [
        {"value": float(np.mean(g)), "multiplicity": len(g), "min": float(g[0]), "max": float(g[-1])}
        for g in groups
    ]


WORK_COUNTS = {"flow_lane_steps": ("flow_lane_steps_useful", "flow_lane_steps_computed"),
               "polish_passes": ("polish_passes_useful", "polish_passes_computed")}
"""Counts :func:`landscape.explore` records beside its timings (summed over chunks like them): the packed flows'
solver steps and the packed polishing's Levenberg-Marquardt passes, useful (of real points) and computed (paid)."""


def summarize(cfg, table: pd.DataFrame, arrays: dict | None = None, timings: dict | None = None) -> dict:
    """The content of ``summary.json`` for one config (one grid point)."""
    counts = {k: int((table["kind"] == k).sum()) for k in KINDS}
    extra = sorted(set(table["kind"]) - set(KINDS))
    counts.update({k: int((table["kind"] == k).sum()) for k in extra})
    saddles = table[table["kind"] == "saddle"]
    cert = table[table["certified"]]
    n = len(table)
    out = {
        "n_points": n,
        "counts": counts,
        "fractions": {k: (v / n if n else 0.0) for k, v in counts.items()},
        "saddle_indices": {int(k): int(v) for k, v in saddles["index"].value_counts().sort_index().items()},
        "n_global_minima": int((table["is_global"] & (table["kind"] == "minimum")).sum()),
        "loss_levels": loss_levels(table),
        "certified": int(table["certified"].sum()),
        "max_certified_grad_norm": float(cert["grad_norm"].max()) if len(cert) else None,
        "min_loss": float(table["loss"].min()) if n else None,
        "flow_status": {k: int(v) for k, v in table["flow_status"].value_counts().items()},
        "tolerances": {
            "flow.grad_tol": cfg.flow.grad_tol,
            "polish.tol (certification: grad_norm <=)": cfg.polish.tol,
            "analysis.zero_tol (relative to max|eig|)": cfg.analysis.zero_tol,
            "analysis.global_loss_tol": cfg.analysis.global_loss_tol,
        },
        "timings_s": {k: v for k, v in (timings or {}).items() if not any(k in ks for ks in WORK_COUNTS.values())},
        **environment(),
    }
    for name, keys in WORK_COUNTS.items():  # packed flows and polishing (landscape.flow.packing): waste accounting
        if all(k in (timings or {}) for k in keys):
            useful, computed = (float(timings[k]) for k in keys)
            out[name] = {"useful": int(useful), "computed": int(computed),
                         "useful_fraction": useful / computed if computed else 1.0}
    out["not_certified"] = not_certified_summary(cfg, table)
    if "sym_class" in table:
        out["symmetry"] = symmetry_summary(cfg, table)
    return out


_WHY = {
    "max_iter": ("polishing used all polish.max_iter = {max_iter} iterations, |g| {g}: Newton steps converge only "
                 "linearly along nearly flat directions (smallest |eigenvalue| / largest {r}: near-degenerate "
                 "saddles or higher-order critical points); raise polish.max_iter, or flow.t_max to leave the plateau"),
    "stagnated": ("polishing stopped at round-off before |g| <= polish.tol, |g| {g} (smallest |eigenvalue| / largest "
                  "{r}): the point is not an isolated critical point at this precision"),
    "not_polished": "polish.enabled = false and the flow stopped at |g| {g} > polish.tol",
    "not_finite": "NaN/inf loss or gradient after polishing",
    "diverged": "the flow diverged (see flow_status); its end state is reported unpolished",
}


def not_certified_summary(cfg, table: pd.DataFrame) -> list[dict]:
    """Why points were not certified: per reason (``polish_stop``), the count, |g| range and one line of explanation."""
    if "polish_stop" not in table:
        return []
    out = []
    rest = table[~table["certified"].astype(bool)]
    for reason, rows in rest.groupby("polish_stop", sort=True):
        g = rows["grad_norm"].to_numpy(float)
        g = g[np.isfinite(g)]
        ratio = (np.abs(rows["min_eig"]) / rows["max_eig"].abs()).to_numpy(float) if "min_eig" in rows else []
        ratio = np.asarray(ratio)[np.isfinite(ratio)]
        text = _WHY.get(str(reason), str(reason)).format(
            max_iter=cfg.polish.max_iter, g=f"{g.min():.1e} .. {g.max():.1e}" if g.size else "n/a",
            r=f"{ratio.min():.0e} .. {ratio.max():.0e}" if ratio.size else "n/a")
        out.append({"reason": str(reason), "count": int(len(rows)), "explanation": text})
    return out


def symmetry_summary(cfg, table: pd.DataFrame) -> dict:
    """The symmetry analyzer's summary over the certified points of the whole table (all chunks of one config)."""
    from ..analysis.symmetry import COLUMNS, Tolerances, summarize, teacher_reduction
    from ..config import build_problem

    problem = build_problem(cfg)
    tol = Tolerances()
    teacher = teacher_reduction(problem, tol)
    cert = table[table["certified"]]
    columns = {c: cert[c].to_numpy() for c in COLUMNS}
    return summarize(
        columns,
        problem,
        teacher_width=None if teacher is None else teacher.r,
        tol=tol,
        zero_tol=cfg.analysis.zero_tol,
        global_loss_tol=cfg.analysis.global_loss_tol,
    )


def format_summary(summary: dict, table: pd.DataFrame) -> str:
    """A human-readable summary table for the terminal."""
    lines = []
    n = summary["n_points"]
    lines.append(f"{n} trajectories; certified critical points: {summary['certified']} "
                 f"(grad_norm <= {summary['tolerances']['polish.tol (certification: grad_norm <=)']:.0e}; "
                 f"max measured {_fmt(summary['max_certified_grad_norm'])})")
    lines.append("")
    lines.append(f"{'kind':<16}{'count':>7}{'fraction':>10}")
    for k, v in summary["counts"].items():
        if v:
            lines.append(f"{k:<16}{v:>7}{v / n:>10.3f}")
    for item in summary.get("not_certified", []):
        lines.append(f"  not certified ({item['count']}, {item['reason']}): {item['explanation']}")
    if summary["saddle_indices"]:
        idx = ", ".join(f"index {k}: {v}" for k, v in summary["saddle_indices"].items())
        lines.append(f"saddles by index: {idx}")
    lines.append("")
    lines.append(f"{'loss level':>14}{'count':>7}  kinds")
    for lvl in summary["loss_levels"][:15]:
        kinds = ", ".join(f"{k} x{v}" for k, v in lvl["kinds"].items())
        lines.append(f"{lvl['loss']:>14.6e}{lvl['count']:>7}  {kinds}")
    if len(summary["loss_levels"]) > 15:
        lines.append(f"... {len(summary['loss_levels']) - 15} more levels in summary.json")
    if "symmetry" in summary:
        sym = summary["symmetry"]
        cls = ", ".join(f"{k}: {v}" for k, v in sym["classes"].items() if v)
        lines.append("")
        lines.append(f"symmetry classes of certified points: {cls}")
        t = sym.get("T")
        lines.append(
            f"distinct global-minimum subspaces reached: {sym['distinct_global_subspaces']}"
            + (f" of T(r*={sym['teacher_width_reduced']}, m={sym['student_width']}) = {t}" if t is not None else "")
        )
        for s in sym["subspaces"]:
            if s["class"] != "global_minimum":
                lines.append(
                    f"  {s['class']} r={s['r']} zeros={s['zeros']}: {s['points']} points in "
                    f"{s['distinct_subspaces']} subspaces (predicted {s['predicted_subspaces']})"
                )
    tol = summary["tolerances"]["analysis.zero_tol (relative to max|eig|)"]
    lines.append(f"(zero eigenvalue tolerance: |lambda| <= {tol:.0e} * max|lambda| per point)")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2e}"
