"""Classify a certified critical point from its Hessian spectrum.

With lambda_1 <= ... <= lambda_P the Hessian eigenvalues and a zero tolerance tau = zero_tol * max_i |lambda_i|
(relative to the spectrum's scale; stated in every output):

- ``saddle`` of index k if k = #{lambda_i < -tau} > 0 (a strictly negative direction exists);
- ``minimum`` if no eigenvalue is below -tau and either none is within tau of zero (strict minimum), or the loss is
  at most ``global_loss_tol`` (L >= 0, so a zero-loss point is a global minimum whatever its flat directions);
- ``degenerate`` otherwise: the sign is decided only by near-zero eigenvalues (higher-order terms). The symmetry
  analyzer may refine this when every near-zero direction is an exact symmetry direction.

Points whose polished gradient norm exceeds the certification tolerance are ``not_converged``; trajectories that
went non-finite are ``diverged``. Their eigenvalues are still reported where finite. Works on host (numpy).
"""

from __future__ import annotations

import numpy as np

__all__ = ["KINDS", "classify_spectrum"]

KINDS = ("minimum", "saddle", "degenerate", "not_converged", "diverged")


def classify_spectrum(eigs, loss, *, zero_tol: float, global_loss_tol: float, certified, finite=None) -> dict:
    """Classify a batch of points from their sorted eigenvalues.

    Args:
        eigs: (n, P) eigenvalues per point (any order).
        loss: (n,) loss values.
        zero_tol: relative zero tolerance; tau = zero_tol * max|lambda| per point.
        global_loss_tol: loss at or below which a point without negative directions is a global minimum.
        certified: (n,) bool, gradient norm at or below the certification tolerance.
        finite: (n,) bool, trajectory and point finite (default: eigenvalues and loss finite).

    Returns:
        dict of (n,) numpy arrays: kind (str), index, null_dim, n_pos, min_eig, max_eig, zero_tol_abs, is_global.
    """
    eigs = np.asarray(eigs, dtype=float)
    loss = np.asarray(loss, dtype=float)
    n = eigs.shape[0]
    ok = np.isfinite(eigs).all(axis=1) & np.isfinite(loss)
    finite = ok if finite is None else (np.asarray(finite, bool) & ok)
    certified = np.asarray(certified, bool) & finite
    with np.errstate(invalid="ignore"):
        scale = np.where(finite, np.max(np.abs(np.where(np.isfinite(eigs), eigs, 0.0)), axis=1), np.nan)
    scale = np.where(scale > 0, scale, 1.0)
    tau = zero_tol * scale
    e = np.where(np.isfinite(eigs), eigs, np.nan)
    n_neg = np.sum(e < -tau[:, None], axis=1)
    n_pos = np.sum(e > tau[:, None], axis=1)
    null_dim = np.sum(np.abs(e) <= tau[:, None], axis=1)
    is_global = finite & (loss <= global_loss_tol)
    kind = np.empty(n, dtype=object)
    kind[:] = "degenerate"
    kind[(n_neg == 0) & ((null_dim == 0) | is_global)] = "minimum"
    kind[n_neg > 0] = "saddle"
    kind[~certified] = "not_converged"
    kind[~finite] = "diverged"
    return {
        "kind": kind.astype(str),
        "index": n_neg.astype(np.int64),
        "null_dim": null_dim.astype(np.int64),
        "n_pos": n_pos.astype(np.int64),
        "min_eig": np.where(finite, np.nanmin(np.where(np.isfinite(e), e, np.inf), axis=1), np.nan),
        "max_eig": np.where(finite, np.nanmax(np.where(np.isfinite(e), e, -np.inf), axis=1), np.nan),
        "zero_tol_abs": tau,
        "is_global": is_global,
    }
