"""Saddle-to-saddle dynamics: plateaus of loss curves and the certified critical points visited.

From small initialisations the loss of a gradient flow stays nearly flat over long stretches of log-time while the
weights pass close to critical points (the origin, then saddles of growing reduced width), and drops in between
(Kumar & Haupt 2024, arXiv:2402.09226; Şimşek et al. 2021 for the symmetry-induced saddles). Given snapshots of a
trajectory (times t_s, losses L_s, parameters theta_s, from :func:`landscape.run_flow` with ``save_params``):

1. a *plateau* is a maximal run of snapshots (t > 0) along which |log(L_(s+1) + eps) - log(L_s + eps)| <=
   ``flat_tol`` * (log10 t_(s+1) - log10 t_s) (loss changes by less than a fraction ``flat_tol`` per decade of
   time; eps = 1e-12 L_0) and which spans at least ``min_decades`` decades of time;
2. its representative is the snapshot of smallest gradient norm inside it;
3. representatives of all trajectories are polished and certified at once (:func:`landscape.certify`, one
   ``jit(vmap)``), then analysed (:class:`landscape.HessianSpectrum`, :class:`landscape.SymmetryAnalysis` for
   two-layer students, :class:`landscape.Classify`): loss, index, kind and reduced width of the critical point;
4. two-layer students: a representative that does not certify directly is usually near a saddle whose neurons are
   duplicated (split) copies: the loss is only cubic in the angle between ReLU copies, so polishing converges
   slowly along the split. It is then reduced (:func:`landscape.analysis.symmetry.reduce.reduce_two_layer`,
   merging directions within ``merge_tol``), the width-r reduced point is polished and certified, and its neurons
   are put back exactly parallel with the original norms and shares of the output weight (the splitting embedding,
   README science section 1), which is certified again on the full problem (``via_reduction`` in the results);
5. consecutive plateaus of one trajectory that certify to the same critical loss (relative ``same_loss_tol``) are
   merged, giving the sequence of critical points the trajectory visits.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ...problem.networks import TwoLayer
from ..analyzer import Point, run_analyzers
from ..classify import Classify
from ..explore import Polish, certify
from ..hessian import HessianSpectrum
from ..symmetry.analyze import SymmetryAnalysis
from ..symmetry.embed import problem_with_width
from ..symmetry.reduce import Tolerances, reduce_two_layer

__all__ = ["detect_plateaus", "Visit", "SaddleSequence", "saddle_to_saddle"]


def detect_plateaus(ts, loss, *, flat_tol: float = 0.02, min_decades: float = 0.5) -> list[tuple[int, int]]:
    """Plateaus of one loss curve (module docstring, step 1) as (first, last) snapshot indices.

    Args:
        ts: (S,) snapshot times (t = 0 and non-finite losses are ignored).
        loss: (S,) losses (NaN after the flow stopped).
        flat_tol: largest |d log L / d log10 t| inside a plateau.
        min_decades: shortest plateau, in decades of time.

    Example:
        >>> import numpy as np
        >>> from landscape.analysis.dynamics import detect_plateaus
        >>> ts = np.logspace(-2, 3, 51)
        >>> loss = np.where(ts < 1, 1.0, np.where(ts < 10, 1.0 / ts, 0.1))  # flat, drop, flat
        >>> detect_plateaus(ts, loss)
        [(0, 20), (30, 50)]
    """
    ts, loss = np.asarray(ts, float), np.asarray(loss, float)
    ok = np.flatnonzero((ts > 0) & np.isfinite(loss))
    if len(ok) < 2:
        return []
    eps = 1e-12 * max(float(np.nanmax(np.abs(loss[ok]))), 1e-300)
    lt, ll = np.log10(ts[ok]), np.log(np.maximum(loss[ok], 0.0) + eps)
    flat = np.abs(np.diff(ll)) <= flat_tol * np.maximum(np.diff(lt), 1e-300)
    out, start = [], None
    for s, f in enumerate(np.append(flat, False)):
        if f and start is None:
            start = s
        elif not f and start is not None:
            if lt[s] - lt[start] >= min_decades:
                out.append((int(ok[start]), int(ok[s])))
            start = None
    return out


@dataclass(frozen=True)
class Visit:
    """One critical point visited by one trajectory.

    Attributes:
        trajectory: index of the trajectory; t_start, t_end: the plateau's time span.
        plateau_loss: median flow loss on the plateau.
        loss, grad_norm, certified: the polished point (accurate loss, |grad L|, certified at ``Polish.tol``).
        via_reduction: certified through the reduced network and the splitting embedding (module docstring).
        kind, index: classification (``kind`` uses the symmetry analysis); reduced_width: its reduced width
            (-1 when not analysed); distance: |theta_snapshot - theta_certified|.
    """

    trajectory: int
    t_start: float
    t_end: float
    plateau_loss: float
    loss: float
    grad_norm: float
    certified: bool
    kind: str
    index: int
    reduced_width: int
    distance: float
    via_reduction: bool = False


@dataclass(frozen=True)
class SaddleSequence:
    """Result of :func:`saddle_to_saddle`: the visits of every trajectory, in time order.

    Attributes:
        visits: tuple of :class:`Visit` (all trajectories, grouped by trajectory, then by time).
        ts: (S,) snapshot times; loss: (n, S) loss curves; tol: the certification threshold.
    """

    visits: tuple
    ts: np.ndarray
    loss: np.ndarray
    tol: float

    def sequence(self, trajectory: int) -> list[Visit]:
        """The visits of one trajectory, in time order."""
        return [v for v in self.visits if v.trajectory == trajectory]

    def table(self):
        """pandas DataFrame with one row per visit (the fields of :class:`Visit`)."""
        import pandas as pd

        return pd.DataFrame([v.__dict__ for v in self.visits])

    def levels(self, rel_tol: float = 1e-6):
        """Distinct certified critical points visited: DataFrame of loss, kind, index, reduced width and how many
        trajectories visit each (certified visits only; losses within ``rel_tol`` are one level)."""
        import pandas as pd

        rows = []
        for v in sorted((v for v in self.visits if v.certified), key=lambda v: -v.loss):
            for r in rows:
                if abs(r["loss"] - v.loss) <= rel_tol * max(abs(v.loss), 1e-30) and r["kind"] == v.kind and \
                        r["index"] == v.index and r["reduced_width"] == v.reduced_width:
                    r["trajectories"].add(v.trajectory)
                    break
            else:
                rows.append({"loss": v.loss, "kind": v.kind, "index": v.index, "reduced_width": v.reduced_width,
                             "trajectories": {v.trajectory}})
        for r in rows:
            r["trajectories"] = len(r["trajectories"])
        return pd.DataFrame(rows, columns=["loss", "kind", "index", "reduced_width", "trajectories"])


def _via_reduction(problem, theta, polish: Polish, merge_tol: float):
    """Certify one point through its reduced network and the splitting embedding (module docstring, step 4).

    Returns the embedded trainable dict (numpy) or None when the reduction does not apply."""
    act = problem.student.activation
    if act.homogeneity is None or "a" in problem.frozen or problem.student.bias:
        return None
    p = float(act.homogeneity)
    th = {k: np.asarray(v, float) for k, v in theta.items()}
    red = reduce_two_layer(problem.full_params(th), act, x=problem.x, tol=Tolerances(u_tol=merge_tol))
    if red.r == 0:
        return None
    prob_r = problem_with_width(problem, red.r)
    cr = certify(prob_r, {"w": jnp.asarray(red.reduced["w"])[None], "a": jnp.asarray(red.reduced["a"])[None]},
                 polish=polish)
    if not bool(cr.certified[0]):
        return None
    w_r, a_r = np.asarray(cr.theta["w"][0]), np.asarray(cr.theta["a"][0])
    n_r = np.linalg.norm(w_r, axis=1)
    u_r, big_a = w_r / np.where(n_r > 0, n_r, 1.0)[:, None], a_r * n_r**p  # f_r = sum_k A_k sigma(u_k . x)
    w, a = th["w"].copy(), th["a"].copy()
    nrm = np.linalg.norm(w, axis=1)
    for k, group in enumerate(red.groups):
        g = list(group)
        share = red.kappa[g] * a[g]
        beta = share / share.sum() if abs(share.sum()) > 0 else np.full(len(g), 1.0 / len(g))
        w[g] = nrm[g][:, None] * u_r[k]
        a[g] = beta * big_a[k] / nrm[g] ** p
    for j in (*red.zero, *red.dead):
        a[j] = 0.0
        if j in red.dead:
            w[j] = 0.0
    return {"w": w, "a": a}


def saddle_to_saddle(problem, trajectory, *, polish: Polish | None = None, flat_tol: float = 0.02,
                     min_decades: float = 0.5, same_loss_tol: float = 1e-6, zero_tol: float = 1e-7,
                     global_loss_tol: float = 1e-20, merge_tol: float = 0.05) -> SaddleSequence:
    """Plateaus of a batch of trajectories, certified and classified (module docstring).

    Args:
        problem: the problem the flows ran on.
        trajectory: a batched :class:`landscape.Trajectory` (leading axis n) with parameter snapshots
            (``GradientFlow(..., save_params=True)``), e.g. ``explore(...).trajectory``.
        polish: certification settings (default ``Polish()``: |grad L| <= 1e-10).
        flat_tol, min_decades: plateau detection (:func:`detect_plateaus`).
        same_loss_tol: consecutive plateaus certifying to losses within this relative tolerance are one visit.
        zero_tol, global_loss_tol: classification tolerances (:func:`landscape.classify`).
        merge_tol: directions merged when a point certifies only through its reduced network (step 4).

    Returns:
        :class:`SaddleSequence`.

    Example:
        >>> import jax, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1),
        ...                                                 output_weights=[1.0, -1.0, 0.6]), ls.TwoLayer(width=3))
        >>> flow = ls.GradientFlow(300.0, n_snapshots=160, save_params=True)
        >>> res = ls.explore(problem, flow, key=jax.random.key(0), n=4, init=ls.GaussianInit(1e-2),
        ...                  analyzers=())  # doctest: +SKIP
        >>> ls.saddle_to_saddle(problem, res.trajectory).levels()  # doctest: +SKIP
               loss    kind  index  reduced_width  trajectories
        0  0.565657  saddle      3              0             4
        1  0.084175  saddle      2              1             ...
    """
    if trajectory.params is None:
        raise ValueError("saddle_to_saddle needs parameter snapshots: run the flow with save_params=True")
    polish = Polish() if polish is None else polish
    ts = np.asarray(trajectory.ts)
    ts = ts[0] if ts.ndim == 2 else ts
    loss, gn = np.asarray(trajectory.loss), np.asarray(trajectory.grad_norm)
    found = []  # (trajectory, first, last, representative)
    for r in range(loss.shape[0]):
        for a, b in detect_plateaus(ts, loss[r], flat_tol=flat_tol, min_decades=min_decades):
            seg = np.arange(a, b + 1)
            rep = int(seg[np.nanargmin(np.where(np.isfinite(gn[r, seg]), gn[r, seg], np.inf))])
            found.append((r, a, b, rep))
    if not found:
        return SaddleSequence(visits=(), ts=ts, loss=loss, tol=float(polish.tol))
    rows = jnp.asarray([f[0] for f in found])
    reps = jnp.asarray([f[3] for f in found])
    thetas = jax.tree.map(lambda p: p[rows, reps], trajectory.params)
    points = certify(problem, thetas, polish=polish)
    via = np.zeros(len(found), bool)
    if isinstance(problem.student, TwoLayer) and not bool(np.all(points.certified)):
        retry = [i for i in range(len(found)) if not bool(points.certified[i])]
        embedded = {i: _via_reduction(problem, jax.tree.map(lambda x, i=i: x[i], thetas), polish, merge_tol)
                    for i in retry}
        embedded = {i: e for i, e in embedded.items() if e is not None}
        if embedded:
            idx = sorted(embedded)
            # padded to the batch size of the first certification, whose compilation it then reuses
            padded = idx + [idx[0]] * (len(found) - len(idx))
            again = certify(problem, {k: jnp.asarray(np.stack([embedded[i][k] for i in padded])) for k in ("w", "a")},
                            polish=polish)
            keep = [n for n, i in enumerate(idx) if bool(again.certified[n])]
            if keep:
                sel, dst = jnp.asarray(keep), jnp.asarray([idx[n] for n in keep])
                points = jax.tree.map(lambda old, new: old.at[dst].set(new[sel]), points, again)
                via[np.asarray(dst)] = True
    analyzers = [HessianSpectrum()]
    if SymmetryAnalysis().applies_to(problem):
        analyzers.append(SymmetryAnalysis(zero_tol, global_loss_tol))
    analyzers.append(Classify(zero_tol=zero_tol, global_loss_tol=global_loss_tol))
    res = run_analyzers(analyzers, problem, Point(theta=points.theta, loss=points.loss, grad_norm=points.grad_norm,
                                                  certified=points.certified, finite=points.finite))
    cols = res.columns
    flat = lambda t: np.concatenate([np.asarray(x).reshape(len(found), -1) for x in jax.tree.leaves(t)], 1)  # noqa: E731
    dist = np.linalg.norm(flat(thetas) - flat(points.theta), axis=1)
    width = np.asarray(cols.get("reduced_width", np.full(len(found), -1)))
    visits = []
    for i, (r, a, b, _) in enumerate(found):
        v = Visit(trajectory=int(r), t_start=float(ts[a]), t_end=float(ts[b]),
                  plateau_loss=float(np.nanmedian(loss[r, a:b + 1])), loss=float(points.loss[i]),
                  grad_norm=float(points.grad_norm[i]), certified=bool(points.certified[i]), kind=str(cols["kind"][i]),
                  index=int(cols["index"][i]), reduced_width=int(width[i]), distance=float(dist[i]),
                  via_reduction=bool(via[i]))
        prev = visits[-1] if visits else None
        if prev is not None and prev.trajectory == v.trajectory and prev.certified and v.certified and \
                abs(prev.loss - v.loss) <= same_loss_tol * max(abs(v.loss), 1e-30) and prev.index == v.index:
            visits[-1] = Visit(**{**prev.__dict__, "t_end": v.t_end})
            continue
        visits.append(v)
    return SaddleSequence(visits=tuple(visits), ts=ts, loss=loss, tol=float(polish.tol))
