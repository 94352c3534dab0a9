"""Classify a critical point from its Hessian spectrum: the one rule of the package, and its analyzer.

With lambda_1 <= ... <= lambda_P the Hessian eigenvalues and a zero tolerance tau = zero_tol * max_i |lambda_i|
(relative to the spectrum's scale; stated in every output):

- ``saddle`` of index k if k = #{lambda_i < -tau} > 0 (a strictly negative direction exists);
- ``minimum`` if no eigenvalue is below -tau and either none is within tau of zero (strict minimum), or the loss is
  zero (L >= 0, so a zero-loss point is a global minimum whatever its flat directions), or every near-zero
  eigenvalue is explained by an exact symmetry direction (a Morse-Bott manifold of critical points; the symmetry
  analyzer counts them, ``null_dim_explained``);
- ``degenerate`` otherwise: the sign is decided only by higher-order terms.

Points whose polished gradient norm exceeds the certification tolerance are ``not_converged``; points that are
not finite (or whose flow diverged) are ``diverged``.

:class:`Classify` applies the rule twice: ``kind_hessian`` from the spectrum and the loss alone, ``kind`` with the
symmetry analyzer's identification (zero loss when it identifies a global minimum; explained null directions)
when that analyzer ran before it.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .analyzer import AbstractAnalyzer

__all__ = ["KINDS", "classify", "classify_spectrum", "Classify"]

KINDS = ("minimum", "saddle", "degenerate", "not_converged", "diverged")
_CODE = {0: "minimum", 1: "saddle", 2: "degenerate", 3: "not_converged", 4: "diverged"}


def classify(eigenvalues, *, zero_tol, zero_loss=False, explained=-1, certified=True, finite=True) -> dict:
    """The classification rule (module docstring) for ONE point; pure JAX, jittable and vmappable.

    Args:
        eigenvalues: (P,) Hessian eigenvalues (any order).
        zero_tol: relative zero tolerance; tau = zero_tol * max|lambda|.
        zero_loss: whether the loss is zero (a global minimum if no eigenvalue is negative).
        explained: number of near-zero eigenvalues explained by symmetry (-1: unknown).
        certified, finite: whether the point is certified / finite.

    Returns:
        dict of scalars: ``code`` (int: 0 minimum, 1 saddle, 2 degenerate, 3 not_converged, 4 diverged; see
        :data:`KINDS`), ``index``, ``null_dim``, ``n_pos``, ``min_eig``, ``max_eig``, ``zero_tol_abs``.
    """
    e = jnp.asarray(eigenvalues)
    ok = jnp.all(jnp.isfinite(e))
    finite = jnp.asarray(finite) & ok
    scale = jnp.max(jnp.abs(jnp.where(jnp.isfinite(e), e, 0.0)))
    scale = jnp.where(scale > 0, scale, 1.0)
    tau = zero_tol * scale
    n_neg = jnp.sum(e < -tau)
    n_pos = jnp.sum(e > tau)
    null_dim = jnp.sum(jnp.abs(e) <= tau)
    explained_all = (explained >= 0) & (explained >= null_dim)
    code = jnp.where(n_neg > 0, 1, jnp.where((null_dim == 0) | zero_loss | explained_all, 0, 2))
    code = jnp.where(certified, code, 3)
    code = jnp.where(finite, code, 4)
    nan = jnp.asarray(jnp.nan, e.dtype)
    return {"code": code.astype(jnp.int32), "index": n_neg.astype(jnp.int64), "null_dim": null_dim.astype(jnp.int64),
            "n_pos": n_pos.astype(jnp.int64), "min_eig": jnp.where(finite, jnp.min(e), nan),
            "max_eig": jnp.where(finite, jnp.max(e), nan), "zero_tol_abs": jnp.where(finite, tau, nan)}


def kind_names(codes) -> np.ndarray:
    """Kind names (str array) of integer codes returned by :func:`classify`."""
    return np.asarray([_CODE[int(c)] for c in np.asarray(codes).ravel()], dtype=str).reshape(np.shape(codes))


def classify_spectrum(eigs, loss, *, zero_tol: float, global_loss_tol: float, certified, finite=None) -> dict:
    """:func:`classify` over a batch on the host, for tables: (n, P) eigenvalues and (n,) losses.

    Returns a dict of (n,) numpy arrays: kind (str), index, null_dim, n_pos, min_eig, max_eig, zero_tol_abs,
    is_global (finite and loss <= global_loss_tol).
    """
    import jax

    eigs = jnp.asarray(np.asarray(eigs, float))
    loss = np.asarray(loss, float)
    fin = np.isfinite(loss) if finite is None else (np.asarray(finite, bool) & np.isfinite(loss))
    zero = fin & (loss <= global_loss_tol)
    out = jax.vmap(lambda e, z, c, f: classify(e, zero_tol=zero_tol, zero_loss=z, certified=c, finite=f))(
        eigs, jnp.asarray(zero), jnp.asarray(np.asarray(certified, bool)), jnp.asarray(fin))
    out = {k: np.asarray(v) for k, v in out.items()}
    return {"kind": kind_names(out.pop("code")), **out, "is_global": zero}


class Classify(AbstractAnalyzer):
    """The classification rule applied to every point; see the module docstring.

    ``zero_tol`` (relative zero-eigenvalue tolerance) and ``global_loss_tol`` (loss at or below which a point is
    a zero-loss, global minimum) are traced. Reads ``eigenvalues`` (from :class:`HessianSpectrum`) and, when the
    symmetry analyzer ran before it, its identification. Columns: kind, index, null_dim, n_pos, min_eig, max_eig,
    zero_tol_abs, is_global, kind_hessian.
    """

    zero_tol: float = 1.0e-7
    global_loss_tol: float = 1.0e-20
    name = "classify"
    requires = ("eigenvalues",)
    optional = ("_sym_global", "null_dim_explained")

    def __call__(self, problem, point, previous):
        zero = point.finite & (point.loss <= self.global_loss_tol)
        sym_global = previous.get("_sym_global", False)
        explained = previous.get("null_dim_explained", -1)
        common = dict(zero_tol=self.zero_tol, certified=point.certified, finite=point.finite)
        alone = classify(previous["eigenvalues"], zero_loss=zero, **common)
        full = classify(previous["eigenvalues"], zero_loss=zero | sym_global, explained=explained, **common)
        code = full.pop("code")
        return {"_kind_code": code, **full, "is_global": point.finite & (zero | sym_global),
                "_kind_hessian_code": alone["code"]}

    def finalize(self, outputs: dict) -> dict:
        out = {"kind": kind_names(outputs.pop("_kind_code"))}
        hessian_only = kind_names(outputs.pop("_kind_hessian_code"))
        out.update(outputs)
        out["kind_hessian"] = hessian_only
        return out
