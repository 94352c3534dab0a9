"""Matrix-free Hessian spectra: Lanczos extremes with residuals, Hutchinson / Hutch++ traces, SLQ densities.

For nets too large for a dense ``eigh`` (P parameters, memory P^2), everything here touches the Hessian only
through Hessian-vector products, forward mode over the gradient (:func:`hessian_operator`):

    H v = d/de grad L(theta + e v) |_{e=0}     (``jax.linearize`` of the gradient once, then one JVP per product)

and the Krylov core of matfree (Krämer et al.): Lanczos tridiagonalisation with full reorthogonalisation,
Q^T H Q = T (m x m, m = ``num_matvecs``), and its stochastic trace estimators.

- :func:`lanczos_extremes`: Ritz values of T at both ends of the spectrum, the k largest and k smallest (most
  negative) eigenvalue estimates, with their Ritz vectors and the measured residuals |H y - theta y| (one extra
  product each). For symmetric H, |theta - lambda| <= |H y - theta y| for some eigenvalue lambda (Kahan/Parlett),
  and the error of a converged extreme Ritz value is ~ residual^2 / gap. When the Krylov space becomes invariant
  (beta_j <= ``breakdown_tol`` * |T|: H has few distinct eigenvalues, as at the symmetric points of Arjevani &
  Field), T is cut at j: its leading block holds exact eigenvalues, each distinct eigenvalue once (a single start
  vector cannot see multiplicities: use the dense path for those).
- :func:`hutchinson_trace`: tr H ~ mean_i z_i^T H z_i over Rademacher z (matfree's Monte-Carlo estimator), with its
  standard error.
- :func:`hutchpp_trace`: Hutch++ (Meyer, Musco, Musco & Woodruff 2021): tr H = tr(Q^T H Q) + Hutchinson on the
  deflated (I - QQ^T) H (I - QQ^T), Q an orthonormal basis of H S; variance O(1/m^2) instead of O(1/m).
- :func:`spectral_density`: stochastic Lanczos quadrature (Golub & Meurant; Ubaru, Chen & Saad 2017; Ghorbani,
  Krishnan & Xiao 2019): for probes z on the unit sphere, z^T f(H) z ~ sum_i tau_i^2 f(theta_i) with theta_i, tau_i
  the eigenvalues and first eigenvector components of T; the density is phi(t) = mean over probes of
  sum_i tau_i^2 N(t; theta_i, sigma^2) (:meth:`SpectralDensity.density`), a probability density (P phi counts
  eigenvalues per unit).

Every function takes ``matvec`` (flat (P,) -> (P,)) and is jittable; the ``hessian_*`` wrappers build the operator
from ``(problem, theta)``. One point at a time (vmap outside for small nets; big nets use one point per call).

Example:
    >>> import jax, jax.numpy as jnp, landscape as ls
    >>> from landscape.analysis.krylov import lanczos_extremes
    >>> a = jnp.diag(jnp.arange(1.0, 51.0))
    >>> res = lanczos_extremes(lambda v: a @ v, jnp.ones(50), k=2, num_matvecs=50)
    >>> res.largest.round(8).tolist(), res.smallest.round(8).tolist()
    ([50.0, 49.0], [1.0, 2.0])

References:
    Lanczos, An iteration method for the solution of the eigenvalue problem of linear differential and integral
    operators, J. Res. NBS 45, 1950. Parlett, The Symmetric Eigenvalue Problem, SIAM 1998 (residual bounds).

    Krämer, Moreno-Muñoz, Roy & Hauberg, Gradients of functions of large matrices, NeurIPS 2024 (matfree).

    Meyer, Musco, Musco & Woodruff, Hutch++: Optimal Stochastic Trace Estimation, SOSA 2021.

    Ghorbani, Krishnan & Xiao, An Investigation into Neural Net Optimization via Hessian Eigenvalue Density,
    ICML 2019 (SLQ densities of network Hessians).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from matfree import decomp, stochtrace

from ..flow.polish import flat_gradient

__all__ = ["hessian_operator", "LanczosExtremes", "lanczos_extremes", "hessian_extremes", "hutchinson_trace",
           "hutchpp_trace", "SpectralDensity", "spectral_density", "hessian_density", "BREAKDOWN_TOL"]

BREAKDOWN_TOL = 1.0e-8
"""Lanczos is cut where beta_j <= BREAKDOWN_TOL * max|T| (an invariant Krylov subspace, to rounding)."""


def hessian_operator(problem, theta):
    """``(matvec, flat)``: v -> H v over the flattened trainable parameters, and the flat point.

    Forward mode over the gradient: the gradient (the problem's closed form where it has one, else reverse mode:
    :func:`landscape.flow.polish.flat_gradient`) is linearised once at theta (``jax.linearize``), then each product
    is one JVP of it, cost a few gradients, memory O(P) plus the linearisation's residuals. The order of the flat
    vector is that of ``ravel_pytree`` (:func:`landscape.hessian_matrix`).

    Args:
        problem: a :class:`landscape.TeacherStudent`.
        theta: trainable parameter dict of one student.

    Returns:
        ``matvec`` ((P,) -> (P,), pure, vmappable) and ``flat`` (P,).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> from landscape.analysis.krylov import hessian_operator
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> mv, flat = hessian_operator(problem, {"w": jnp.eye(3)[:2], "a": jnp.ones(2)})
        >>> h = ls.hessian_matrix(problem, {"w": jnp.eye(3)[:2], "a": jnp.ones(2)})
        >>> bool(jnp.allclose(mv(jnp.arange(8.0)), h @ jnp.arange(8.0)))
        True
    """
    flat, unravel = ravel_pytree(theta)
    _, matvec = jax.linearize(flat_gradient(problem, unravel), flat)
    return matvec, flat


def _tridiagonalise(matvec, v0, num_matvecs: int, breakdown_tol):
    """Lanczos with full reorthogonalisation (matfree): Q (m, P) rows orthonormal, T (m, m) cut at breakdown.

    Returns (Q, T, active): ``active[i]`` is False past the first breakdown, where T's off-diagonal is zeroed so
    that its trailing block (rounding noise) decouples from the leading one and carries no quadrature weight.
    """
    tridiag = decomp.tridiag_sym(num_matvecs, materialize=False, reortho="full", custom_vjp=False)
    res = tridiag(matvec, v0)
    q = res.Q_tall
    q = q.T if q.shape[0] != num_matvecs else q  # (m, P): rows are Lanczos vectors
    diag, off = res.J_small
    scale = jnp.maximum(jnp.max(jnp.abs(diag)), jnp.max(jnp.abs(off), initial=0.0))
    small = ~(jnp.abs(off) > breakdown_tol * scale)  # NaN counts as a breakdown
    cut = jnp.cumsum(small) > 0  # off[i] couples i and i+1; cut from the first small one on
    off = jnp.where(cut, 0.0, off)
    active = jnp.concatenate([jnp.ones(1, bool), ~cut])
    diag = jnp.where(active, diag, 0.0)
    q = jnp.where(active[:, None], q, 0.0)
    t = jnp.diag(diag) + jnp.diag(off, 1) + jnp.diag(off, -1)
    return q, t, active


class LanczosExtremes(eqx.Module):
    """Extreme Ritz pairs of a symmetric operator (leaves gain a leading axis under vmap).

    Attributes:
        largest: (k,) the k largest Ritz values, descending (NaN where the Krylov space had fewer).
        smallest: (k,) the k smallest (most negative) Ritz values, ascending.
        largest_residuals, smallest_residuals: (k,) measured |H y - theta y| of each unit Ritz vector y.
        largest_vectors, smallest_vectors: (k, P) the Ritz vectors.
        krylov_dim: dimension of the Krylov space used (num_matvecs, or less after a breakdown).
    """

    largest: jax.Array
    smallest: jax.Array
    largest_residuals: jax.Array
    smallest_residuals: jax.Array
    largest_vectors: jax.Array
    smallest_vectors: jax.Array
    krylov_dim: jax.Array


def lanczos_extremes(matvec, v0, *, k: int = 5, num_matvecs: int | None = None,
                     breakdown_tol=BREAKDOWN_TOL) -> LanczosExtremes:
    """The k largest and k smallest eigenvalues of a symmetric operator by Lanczos, with residuals.

    Runs m = ``num_matvecs`` Lanczos steps with full reorthogonalisation (matfree) from ``v0``, cuts T at a breakdown
    (module docstring), takes its eigenpairs (theta_i, u_i), Ritz vectors y_i = Q^T u_i, and measures the residual
    |H y_i - theta_i y_i| with one product per reported pair (2k extra products). Jittable (k, m static).

    Args:
        matvec: v -> H v on flat (P,) vectors (symmetric H).
        v0: (P,) start vector (random, e.g. ``jax.random.normal``; need not be normalised).
        k: number of eigenvalues at each end (static).
        num_matvecs: Krylov dimension m <= P (static); default min(P, max(10 k, 120)).
        breakdown_tol: relative size of an off-diagonal of T below which the Krylov space counts as invariant.

    Returns:
        :class:`LanczosExtremes`.

    Example:
        >>> import jax.numpy as jnp
        >>> from landscape.analysis.krylov import lanczos_extremes
        >>> a = jnp.diag(jnp.linspace(-1.0, 3.0, 40))
        >>> res = lanczos_extremes(lambda v: a @ v, jnp.ones(40), k=1)
        >>> round(float(res.smallest[0]), 12), round(float(res.largest[0]), 12), bool(res.largest_residuals[0] < 1e-10)
        (-1.0, 3.0, True)
    """
    p = v0.shape[0]
    m = min(p, max(10 * k, 120)) if num_matvecs is None else min(int(num_matvecs), p)
    if k > m:
        raise ValueError(f"k = {k} eigenvalues at each end need num_matvecs >= k, got {m}")
    q, t, active = _tridiagonalise(matvec, v0, m, breakdown_tol)
    vals, vecs = jnp.linalg.eigh(t)
    # eigenpairs of the decoupled trailing block live on inactive rows: not Ritz pairs of H
    valid = jnp.sum(jnp.where(active[:, None], vecs, 0.0) ** 2, axis=0) > 0.5
    hi = jnp.argsort(jnp.where(valid, -vals, jnp.inf))[:k]
    lo = jnp.argsort(jnp.where(valid, vals, jnp.inf))[:k]

    def pairs(idx):
        theta = jnp.where(valid[idx], vals[idx], jnp.nan)
        y = vecs[:, idx].T @ q  # (k, P)
        y = y / jnp.linalg.norm(y, axis=1, keepdims=True)
        r = jnp.linalg.norm(jax.vmap(matvec)(y) - theta[:, None] * y, axis=1)
        return theta, r, y

    big, r_big, y_big = pairs(hi)
    small, r_small, y_small = pairs(lo)
    return LanczosExtremes(largest=big, smallest=small, largest_residuals=r_big, smallest_residuals=r_small,
                           largest_vectors=y_big, smallest_vectors=y_small, krylov_dim=jnp.sum(active))


def hessian_extremes(problem, theta, *, key, k: int = 5, num_matvecs: int | None = None) -> LanczosExtremes:
    """:func:`lanczos_extremes` of the Hessian of ``problem`` at ``theta`` (products of :func:`hessian_operator`).

    Args:
        problem: a :class:`landscape.TeacherStudent`.
        theta: trainable parameter dict of one student.
        key: PRNG key of the Gaussian start vector.
        k, num_matvecs: as in :func:`lanczos_extremes` (static).

    Returns:
        :class:`LanczosExtremes`.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> from landscape.analysis.krylov import hessian_extremes
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> theta = {"w": jnp.eye(3)[:2] * 0.5, "a": jnp.ones(2)}
        >>> ext = hessian_extremes(problem, theta, key=jax.random.key(0), k=2)
        >>> eigs = jnp.linalg.eigvalsh(ls.hessian_matrix(problem, theta))
        >>> bool(jnp.allclose(ext.largest, eigs[::-1][:2])), bool(jnp.allclose(ext.smallest, eigs[:2]))
        (True, True)
    """
    matvec, flat = hessian_operator(problem, theta)
    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    return lanczos_extremes(matvec, v0, k=k, num_matvecs=num_matvecs)


def hutchinson_trace(matvec, dim: int, *, key, num_samples: int = 64, dtype=jnp.float64):
    """Hutchinson's estimate of tr H: mean of z^T H z over Rademacher z, and its standard error.

    Unbiased; variance 2 (|H|_F^2 - sum_i H_ii^2) / num_samples. matfree's Monte-Carlo estimator.

    Args:
        matvec: v -> H v on (dim,) vectors.
        dim: P.
        key: PRNG key.
        num_samples: number of probes (static).

    Returns:
        (trace estimate, standard error), scalars.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from landscape.analysis.krylov import hutchinson_trace
        >>> est, sem = hutchinson_trace(lambda v: 2.0 * v, 10, key=jax.random.key(0), num_samples=4)
        >>> float(est), float(sem)  # H = 2 I: every Rademacher probe gives 2 * 10 exactly
        (20.0, 0.0)
    """
    sampler = stochtrace.sampler_signs(jnp.zeros(dim, dtype), num=num_samples)
    estimate = stochtrace.estimator_monte_carlo_mean_and_sem(stochtrace.monte_carlo_trace(), sampler)
    mean, sem = estimate(matvec, key)
    return mean, sem


def hutchpp_trace(matvec, dim: int, *, key, num_matvecs: int = 96, dtype=jnp.float64):
    """Hutch++ estimate of tr H with ``num_matvecs`` products (Meyer et al. 2021).

    With s = m / 3: S, G Rademacher (dim, s); Q = orth(H S);
    tr H ~ tr(Q^T H Q) + (1/s) tr(G^T (I - QQ^T) H (I - QQ^T) G). Exact when rank H <= s.

    Args:
        matvec: v -> H v on (dim,) vectors.
        dim: P.
        key: PRNG key.
        num_matvecs: total products m (static, >= 3).

    Returns:
        The trace estimate (scalar).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from landscape.analysis.krylov import hutchpp_trace
        >>> u = jax.random.normal(jax.random.key(1), (50, 3))
        >>> a = u @ u.T  # rank 3
        >>> bool(jnp.isclose(hutchpp_trace(lambda v: a @ v, 50, key=jax.random.key(0), num_matvecs=12), jnp.trace(a)))
        True
    """
    s = max(1, int(num_matvecs) // 3)
    k1, k2 = jax.random.split(key)
    sign = lambda k: jax.random.rademacher(k, (s, dim), dtype)  # noqa: E731
    mv = jax.vmap(matvec)  # rows in, rows out
    q, _ = jnp.linalg.qr(mv(sign(k1)).T)  # (dim, s)
    g = sign(k2).T
    g = g - q @ (q.T @ g)
    hq = mv(q.T).T
    hg = mv(g.T).T
    hg = hg - q @ (q.T @ hg)
    return jnp.trace(q.T @ hq) + jnp.trace(g.T @ hg) / s


class SpectralDensity(eqx.Module):
    """Gauss quadrature nodes and weights of a spectral density, one row per probe (SLQ).

    Attributes:
        nodes: (probes, m) Ritz values theta_i of each probe's T.
        weights: (probes, m) tau_i^2 (each row sums to 1; zero on the trailing block after a breakdown).
        dim: P, the operator's size (P * density = eigenvalue count per unit).
    """

    nodes: jax.Array
    weights: jax.Array
    dim: int = eqx.field(static=True)

    def density(self, t, sigma):
        """phi(t) = mean_probes sum_i w_i exp(-(t - theta_i)^2 / (2 sigma^2)) / sqrt(2 pi sigma^2) at points t."""
        t = jnp.asarray(t)[..., None, None]
        g = jnp.exp(-0.5 * ((t - self.nodes) / sigma) ** 2) / jnp.sqrt(2.0 * jnp.pi * sigma**2)
        return jnp.mean(jnp.sum(self.weights * g, axis=-1), axis=-1)

    def trace(self):
        """tr H ~ P mean_probes sum_i w_i theta_i (the quadrature of f(x) = x)."""
        return self.dim * jnp.mean(jnp.sum(self.weights * self.nodes, axis=-1))

    def support(self):
        """(min, max) over the quadrature nodes that carry weight: the extreme Ritz values."""
        live = self.weights > 0
        return (jnp.min(jnp.where(live, self.nodes, jnp.inf)), jnp.max(jnp.where(live, self.nodes, -jnp.inf)))


def spectral_density(matvec, dim: int, *, key, num_probes: int = 4, num_matvecs: int = 80,
                     dtype=jnp.float64, breakdown_tol=BREAKDOWN_TOL) -> SpectralDensity:
    """Stochastic Lanczos quadrature of the spectral density of a symmetric operator (module docstring).

    For each of ``num_probes`` probes z (uniform on the sphere), m Lanczos steps from z give T = U diag(theta) U^T;
    nodes theta_i and weights U_{1i}^2. Probes run one after another (``lax.map``) so memory is O(m P).

    Args:
        matvec: v -> H v on (dim,) vectors.
        dim: P.
        key: PRNG key of the probes.
        num_probes, num_matvecs: probes and Lanczos steps per probe (static).
        breakdown_tol: as in :func:`lanczos_extremes`.

    Returns:
        :class:`SpectralDensity`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from landscape.analysis.krylov import spectral_density
        >>> a = jnp.diag(jnp.concatenate([jnp.zeros(90), jnp.full(10, 5.0)]))  # 90 % at 0, 10 % at 5
        >>> sd = spectral_density(lambda v: a @ v, 100, key=jax.random.key(0), num_probes=64, num_matvecs=10)
        >>> abs(float(sd.trace()) - 50.0) < 15.0, int(jnp.max(jnp.sum(sd.weights > 1e-12, axis=1)))
        (True, 2)
    """
    m = min(int(num_matvecs), dim)

    def one(k):
        z = jax.random.normal(k, (dim,), dtype)
        _, t, _ = _tridiagonalise(matvec, z, m, breakdown_tol)
        vals, vecs = jnp.linalg.eigh(t)
        return vals, vecs[0] ** 2

    nodes, weights = jax.lax.map(one, jax.random.split(key, num_probes))
    return SpectralDensity(nodes=nodes, weights=weights, dim=dim)


def hessian_density(problem, theta, *, key, num_probes: int = 4, num_matvecs: int = 80) -> SpectralDensity:
    """:func:`spectral_density` of the Hessian of ``problem`` at ``theta`` (products of :func:`hessian_operator`).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> from landscape.analysis.krylov import hessian_density
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> theta = {"w": jnp.eye(3)[:2] * 0.5, "a": jnp.ones(2)}
        >>> sd = hessian_density(problem, theta, key=jax.random.key(0), num_probes=8, num_matvecs=8)
        >>> bool(jnp.isclose(sd.trace(), jnp.trace(ls.hessian_matrix(problem, theta)), rtol=0.5))
        True
    """
    matvec, flat = hessian_operator(problem, theta)
    return spectral_density(matvec, flat.shape[0], key=key, num_probes=num_probes, num_matvecs=num_matvecs,
                            dtype=flat.dtype)
