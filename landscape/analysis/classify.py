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

Zero loss is decided from what is measured (:func:`is_zero_loss`): a certified point without negative curvature
has zero loss when its accurate loss is at most ``global_loss_tol`` (the error level of the accurate loss) or at
most what the measured gradient leaves in a valley that is flat to fourth order,

    L <= valley_factor * |grad L|^(4/3) * lambda_max^(-1/3),

(L = c delta^4 and |grad L| = 4 c delta^3 at distance delta from a zero-loss set give L = (|g|/4)^(4/3) c^(-1/3);
quadratic valleys leave less, |g|^2 / (2 lambda)). Split global minima of over-parameterised students sit in such
quartic valleys: polished to |g| ~ 1e-11 their loss is 1e-17 .. 1e-15, where a fixed threshold cannot decide,
while spurious minima keep losses many orders of magnitude above the bound.

:class:`Classify` applies the rule twice: ``kind_hessian`` from the spectrum and the measured loss alone, ``kind``
also with the symmetry analyzer's identification (zero loss when it identifies a global minimum; explained null
directions) when that analyzer ran before it. ``is_global`` is the zero-loss verdict ``kind`` used.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .analyzer import AbstractAnalyzer

__all__ = ["KINDS", "classify", "classify_spectrum", "is_zero_loss", "Classify"]

KINDS = ("minimum", "saddle", "degenerate", "not_converged", "diverged")
_CODE = {0: "minimum", 1: "saddle", 2: "degenerate", 3: "not_converged", 4: "diverged"}


def is_zero_loss(loss, grad_norm, max_eig, *, global_loss_tol=1.0e-20, valley_factor=10.0):
    """Whether a measured loss is zero: L <= global_loss_tol or L <= valley_factor |g|^(4/3) lambda_max^(-1/3).

    See the module docstring. Pure JAX, for one point or elementwise over a batch.

    Args:
        loss: accurate loss L >= 0; grad_norm: |grad L|; max_eig: largest Hessian eigenvalue (curvature scale).
        global_loss_tol: absolute floor (the accurate loss's own error level).
        valley_factor: safety factor of the quartic-valley bound.

    Returns:
        bool array.

    Example:
        >>> from landscape.analysis.classify import is_zero_loss
        >>> bool(is_zero_loss(2e-16, 4e-11, 1.3)), bool(is_zero_loss(0.17, 4e-11, 1.3))
        (True, False)
    """
    curvature = jnp.maximum(jnp.asarray(max_eig), jnp.finfo(jnp.result_type(float)).tiny)
    bound = valley_factor * jnp.asarray(grad_norm) ** (4.0 / 3.0) * curvature ** (-1.0 / 3.0)
    return (loss <= global_loss_tol) | (loss <= bound)


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

    With tau = zero_tol * max|lambda|: index = #{lambda < -tau}, null_dim = #{|lambda| <= tau},
    n_pos = #{lambda > tau}. All arguments may be traced; vmap over points for a batch.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> out = ls.classify(jnp.array([-1.0, 0.0, 2.0]), zero_tol=1e-7)
        >>> int(out["code"]), int(out["index"]), int(out["null_dim"]), float(out["zero_tol_abs"])  # a saddle
        (1, 1, 1, 2e-07)
        >>> rule = jax.jit(ls.classify)  # every argument may be traced
        >>> int(rule(jnp.array([1.0, 0.0, 2.0]), zero_tol=1e-7, explained=0)["code"])  # degenerate: sign undecided
        2
        >>> int(rule(jnp.array([1.0, 0.0, 2.0]), zero_tol=1e-7, explained=1)["code"])  # Morse-Bott minimum
        0

    References:
        Şimşek et al., `Geometry of the Loss Landscape in Overparameterized Neural Networks: Symmetries and
        Invariances <https://arxiv.org/abs/2105.12221>`_, ICML 2021.
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


def _as_float(x):
    return jnp.asarray(x, float)


class Classify(AbstractAnalyzer):
    """The classification rule applied to every point; see the module docstring.

    ``zero_tol`` (relative zero-eigenvalue tolerance), ``global_loss_tol`` and ``valley_factor`` (the zero-loss
    decision, :func:`is_zero_loss`) are traced. Reads ``eigenvalues`` (from :class:`HessianSpectrum`) and, when the
    symmetry analyzer ran before it, its identification. Columns: kind, index, null_dim, n_pos, min_eig, max_eig,
    zero_tol_abs, is_global, kind_hessian.

    Args:
        zero_tol: relative zero-eigenvalue tolerance (default 1e-7).
        global_loss_tol: loss at or below which a finite point counts as a global minimum (default 1e-20).
        valley_factor: safety factor of the measured zero-loss bound (default 10).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> thetas = {"w": jnp.stack([jnp.eye(3)[:2], jnp.zeros((2, 3))]), "a": jnp.stack([jnp.ones(2), jnp.zeros(2)])}
        >>> points = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(2),
        ...                   certified=jnp.array([True, True]), finite=jnp.array([True, True]))  # teacher, origin
        >>> res = ls.run_analyzers([ls.HessianSpectrum(), ls.Classify()], problem, points)
        >>> res.columns["kind"].tolist(), res.columns["is_global"].tolist()
        (['minimum', 'degenerate'], [True, False])
    """

    zero_tol: jnp.ndarray = eqx.field(default=1.0e-7, converter=_as_float)
    global_loss_tol: jnp.ndarray = eqx.field(default=1.0e-20, converter=_as_float)
    valley_factor: jnp.ndarray = eqx.field(default=10.0, converter=_as_float)
    name = "classify"
    requires = ("eigenvalues",)
    optional = ("_sym_global", "null_dim_explained")

    def __call__(self, problem, point, previous):
        eigs = previous["eigenvalues"]
        zero = point.finite & point.certified & is_zero_loss(point.loss, point.grad_norm, jnp.max(eigs),
                                                             global_loss_tol=self.global_loss_tol,
                                                             valley_factor=self.valley_factor)
        zero = zero | (point.finite & (point.loss <= self.global_loss_tol))
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
