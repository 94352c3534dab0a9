"""Identify a reduced point: global minimum, symmetry-induced critical point, or other (issue 3, item 3).

- ``global_minimum``: L <= global_loss_tol, or the reduced point matches the reduced teacher (every reduced neuron
  within ``match_tol`` of a distinct teacher neuron, Hungarian matching) and L <= sqrt(global_loss_tol). Each group
  is assigned the teacher neuron it realises. Label ``global|r*=R|n=n_1,..,n_R|z=Z|d=E`` with n_t the number of
  student neurons realising teacher neuron t (teacher order), Z zero-output and E dead neurons.
- ``symmetry_induced``: not global and r < m (duplicated, zero-output or dead neurons): the point is the embedding of
  the width-r critical point given by the reduced form (Fukumizu & Amari 2000). Label ``sym|r=R|<hash>|n=..|z=Z|d=E``
  with <hash> a hash of the reduced point rounded to ``label_decimals`` (canonical order).
- ``other``: not global and r = m (irreducible, e.g. a spurious minimum not induced by splitting).

r = 0 (every neuron zero-output or dead, e.g. the origin w = 0, a = 0) is the width-0 network f = 0 embedded by zero
neurons: ``symmetry_induced`` (label ``sym|r=0|<hash of the empty reduced point>|n=|z=Z|d=E``) unless the loss is
zero, e.g. for a zero teacher (r* = 0, matched trivially: ``global|r*=0|n=|z=Z|d=E``).

Labels depend only on the canonical reduced form at the stated tolerance, so they agree across chunks and runs
without cross-batch matching and are invariant under permutations (and sign flips / rescalings where the activation
allows them). Rounding can split one subspace into two labels only if a coordinate lies within its numerical error
of a rounding boundary (about 2 error / 10^-decimals per coordinate: negligible for polished points). The
``subspace_id`` adds the map from student neurons to reduced neurons (teacher neurons for global minima; with the
sign for odd activations): it distinguishes the individual subspaces counted by T(r*, m) and G(r, m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .canonical import rounded_key, short_hash
from .reduce import Reduction, Tolerances, reduce_two_layer

__all__ = ["Identity", "identify", "teacher_reduction", "match_teacher"]

CLASSES = ("global_minimum", "symmetry_induced", "other")


@dataclass
class Identity:
    """sym_class, label (permutation-invariant), subspace_id, teacher neuron per group (-1: none), match error."""

    sym_class: str
    label: str
    subspace_id: str
    teacher_of_group: tuple
    teacher_match_err: float


def teacher_reduction(problem, tol: Tolerances | None = None) -> Reduction | None:
    """Reduced form of a two-layer teacher (None for deep teachers); r* = its reduced width."""
    tp = problem.teacher_params
    if "layers" in tp:
        return None
    return reduce_two_layer(tp, problem.teacher.activation, x=problem.x, tol=tol)


def match_teacher(red: Reduction, teacher: Reduction | None) -> tuple[tuple, float]:
    """Hungarian matching of reduced neurons (u^_k, A_k) to teacher neurons; (teacher index per group, max rel err)."""
    if teacher is not None and red.r == 0 and teacher.r == 0:  # both the zero function: matched trivially
        return (), 0.0
    if teacher is None or red.r == 0 or teacher.r == 0 or red.D != teacher.D:
        return tuple([-1] * red.r), np.inf
    s = np.concatenate([red.u_hat, red.A[:, None]], axis=1)
    t = np.concatenate([teacher.u_hat, teacher.A[:, None]], axis=1)
    cost = np.linalg.norm(s[:, None, :] - t[None, :, :], axis=-1) / np.maximum(1.0, np.linalg.norm(t, axis=1))[None]
    from scipy.optimize import linear_sum_assignment  # lazy: importing scipy.optimize costs ~0.4 s
    rows, cols = linear_sum_assignment(cost)
    out = [-1] * red.r
    for i, j in zip(rows, cols, strict=True):
        out[i] = int(j)
    err = float(cost[rows, cols].max()) if red.r == teacher.r else np.inf
    return tuple(out), err


def identify(red: Reduction, *, loss: float, teacher: Reduction | None, global_loss_tol: float) -> Identity:
    """Class, label and subspace id of one reduced point (see the module docstring)."""
    tol = red.tol
    tmap, err = match_teacher(red, teacher)
    matched = err <= tol.match_tol
    is_global = bool(loss <= global_loss_tol or (matched and loss <= np.sqrt(global_loss_tol)))
    zd = f"|z={len(red.zero)}|d={len(red.dead)}"
    sign = lambda j: ("-" if red.kappa[j] < 0 else "+") if red.odd else ""  # noqa: E731
    if is_global and matched:
        counts = [0] * teacher.r
        for k, g in enumerate(red.groups):
            counts[tmap[k]] = len(g)
        label = f"global|r*={teacher.r}|n=" + ",".join(map(str, counts)) + zd
        ids = [("z" if g == -1 else "d" if g == -2 else f"t{tmap[g]}{sign(j)}") for j, g in enumerate(red.group_of)]
        return Identity("global_minimum", label, label + "#" + ".".join(ids), tmap, err)
    key = short_hash(rounded_key(red.u_hat, red.A, tol.label_decimals))
    ids = [("z" if g == -1 else "d" if g == -2 else f"g{g}{sign(j)}") for j, g in enumerate(red.group_of)]
    n = "|n=" + ",".join(map(str, red.multiplicities))
    if is_global:  # zero loss but the teacher is not matched (e.g. non-minimal or deep teacher)
        label = f"global|r={red.r}|{key}" + n + zd
        return Identity("global_minimum", label, label + "#" + ".".join(ids), tmap, err)
    cls = "symmetry_induced" if red.r < red.m else "other"
    label = f"{'sym' if cls == 'symmetry_induced' else 'other'}|r={red.r}|{key}" + n + zd
    return Identity(cls, label, label + "#" + ".".join(ids), tmap, err)
