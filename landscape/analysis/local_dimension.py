"""Local dimension of a network on a sample: the rank of the output Jacobian, its spectrum, bounds and linear regions.

For parameters theta (P numbers), a sample X = (x_1, ..., x_n) and K outputs, the local dimension is

    dim(theta; X) = rank J(theta),   J = d (f_theta(x_1), ..., f_theta(x_n)) / d theta   of shape (n K, P)

(Bona-Pellissier, Malgouyres & Bachoc 2024; README, science section 4). It is computed in float64 from the
singular values s_1 >= s_2 >= ... of J: rank = #{s_i > tau} with tau = ``rtol`` * s_1 (default rtol:
max(n K, P) * eps, numpy's ``matrix_rank`` rule), reported with the whole spectrum and the gap s_r / s_{r+1} that
decides it (a gap of 1e8 is a clear rank, a gap near 1 is not).

Bounds (:func:`dimension_bound`), for a ReLU-like (positively homogeneous) activation: every hidden neuron's
rescaling (w_in, b) -> (c w_in, c b), w_out -> w_out / c^p leaves f unchanged, so its tangent (w_in, b, -p w_out)
is in the kernel of J: dim <= P - #hidden. A neuron that is inactive on every x_i (ReLU: w . h + b < 0) has all its
incoming and outgoing weights in the kernel; then dim <= P - #alive hidden - #(weights touching a dead neuron).
Permutations and rescalings leave the rank unchanged (J changes by an invertible linear map).

Linear regions (:func:`linear_regions`): the number of distinct activation patterns (1[z_j(x_i) > 0])_j over the
sample, the linear pieces of a ReLU net that X perceives (for a shallow net the rank is bounded by d + 1 times it).

Large Jacobians (:func:`local_dimension_matfree`): the rank as the trace of the spectral step function of J^T J,
tr 1[J^T J > tau^2], by stochastic Lanczos quadrature (matfree's Lanczos tridiagonalisation with full
reorthogonalisation; Ubaru & Saad 2016): only products J v (jvp) and J^T u (vjp), memory O(P * num_matvecs).

Every function handles ONE parameter set; vmap over points or snapshots outside (:func:`local_dimension_along`).

References:
    Bona-Pellissier, Malgouyres & Bachoc, `Geometry-induced Implicit Regularization in Deep ReLU Neural Networks
    <https://arxiv.org/abs/2402.08269>`_, 2024.

    Ubaru & Saad, Fast methods for estimating the numerical rank of large matrices, ICML 2016.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..problem.activations import ReLU, ReLUPower
from ..problem.networks import TwoLayer
from .analyzer import AbstractAnalyzer

__all__ = ["LocalDimension", "jacobian", "local_dimension", "local_dimension_along", "rank_from_singular_values",
           "activation_patterns", "dead_neurons", "dimension_bound", "linear_regions", "MatfreeRank",
           "local_dimension_matfree", "LocalDimensionAnalyzer"]


def _predictor(problem):
    """(network, f(theta, x)) of a problem (``predict``) or of a bare network (``apply``)."""
    if hasattr(problem, "predict"):
        return problem.student, problem.predict
    return problem, problem.apply


def _frozen(problem) -> dict:
    return dict(getattr(problem, "frozen", {}) or {})


def _full(problem, theta):
    return problem.full_params(theta) if hasattr(problem, "full_params") else theta


def _sample(problem, x):
    if x is not None:
        return jnp.asarray(x, float)
    x = getattr(problem, "x", None)
    if x is None:
        raise ValueError("local dimension needs a sample: pass x (n, d), or use a problem with a sample loss")
    return x


def jacobian(problem, theta, x=None):
    """J = d (f(x_1), ..., f(x_n)) / d theta, shape (n K, P), rows ordered (sample, output), float64.

    Columns follow ``ravel_pytree(theta)`` (the order of :func:`landscape.hessian_matrix`). Forward mode when
    P <= n K, reverse mode otherwise.

    Args:
        problem: a problem with ``predict(theta, x)`` (``TeacherStudent``, ``Supervised``) or a network.
        theta: trainable parameters of one net.
        x: inputs (n, d); None: the problem's sample.

    Returns:
        (n K, P) array.
    """
    _, predict = _predictor(problem)
    x = _sample(problem, x)
    flat, unravel = ravel_pytree(theta)
    outputs = lambda z: jax.vmap(lambda xi: predict(unravel(z), xi))(x).reshape(-1)  # noqa: E731
    n_rows = int(np.prod(jax.eval_shape(outputs, flat).shape))
    return (jax.jacfwd if flat.shape[0] <= n_rows else jax.jacrev)(outputs)(flat)


def rank_from_singular_values(s, rtol=None, shape=None):
    """(rank, tau, gap) from singular values ``s`` (descending): rank = #{s_i > tau}, tau = rtol * s_1.

    ``rtol`` None: max(shape) * eps (numpy's default; ``shape`` is the matrix shape, default (len(s), len(s))).
    gap = s_r / s_{r+1}: inf when r = len(s) or s_{r+1} = 0; NaN when r = 0. Jittable.
    """
    s = jnp.asarray(s)
    k = s.shape[0]
    if rtol is None:
        rtol = max(shape if shape is not None else (k, k)) * jnp.finfo(s.dtype).eps
    tau = rtol * s[0]
    rank = jnp.sum(s > tau).astype(jnp.int32)
    above = s[jnp.clip(rank - 1, 0, k - 1)]
    below = jnp.where(rank < k, s[jnp.clip(rank, 0, k - 1)], 0.0)
    gap = jnp.where(rank == 0, jnp.nan, jnp.where(below > 0, above / jnp.where(below > 0, below, 1.0), jnp.inf))
    return rank, tau, gap


class LocalDimension(eqx.Module):
    """The local dimension at one point (leaves gain a leading axis under vmap).

    Attributes:
        rank: rank J = #{s_i > tau}.
        singular_values: (min(n K, P),) singular values of J, descending.
        tau: the threshold used (rtol * s_1).
        gap: s_rank / s_{rank + 1}, the gap that decides the rank (inf: no singular value below tau).
        bound: P - #alive hidden neurons (rescalings) - #weights touching a dead neuron (:func:`dimension_bound`).
        n_params: P.
        n_rows: n K.
        n_dead: hidden neurons inactive on the whole sample (ReLU-like activations; 0 otherwise).
    """

    rank: jax.Array
    singular_values: jax.Array
    tau: jax.Array
    gap: jax.Array
    bound: jax.Array
    n_params: jax.Array
    n_rows: jax.Array
    n_dead: jax.Array

    def rank_at(self, rtol):
        """The rank at another relative threshold: #{s_i > rtol * s_1}."""
        return jnp.sum(self.singular_values > rtol * self.singular_values[0])


def local_dimension(problem, theta, x=None, *, rtol=None) -> LocalDimension:
    """The local dimension rank J(theta) on the sample, with its spectrum, gap and bound; see the module docstring.

    Args:
        problem: ``TeacherStudent`` / ``Supervised`` (sample inputs ``problem.x``) or a bare network.
        theta: trainable parameters of one net.
        x: inputs (n, d); None: the problem's sample.
        rtol: relative threshold on singular values (None: max(n K, P) eps).

    Returns:
        A :class:`LocalDimension`. Pure and jittable (x and theta traced); vmap it over points.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> from landscape.analysis.local_dimension import local_dimension
        >>> net = ls.TwoLayer(width=3, input_dim=4)
        >>> theta = {"w": jnp.eye(3, 4), "a": jnp.ones(3)}
        >>> ld = local_dimension(net, theta, jax.random.normal(jax.random.key(1), (100, 4)))
        >>> int(ld.rank), int(ld.bound), int(ld.n_params), bool(ld.gap > 1e10)  # 15 parameters - 3 rescalings
        (12, 12, 15, True)
    """
    x = _sample(problem, x)
    J = jacobian(problem, theta, x)
    s = jnp.linalg.svd(J, compute_uv=False)
    rank, tau, gap = rank_from_singular_values(s, rtol, J.shape)
    bound, n_dead = dimension_bound(problem, theta, x)
    return LocalDimension(rank=rank, singular_values=s, tau=tau, gap=gap, bound=bound,
                          n_params=jnp.asarray(J.shape[1]), n_rows=jnp.asarray(J.shape[0]), n_dead=n_dead)


def local_dimension_along(problem, thetas, x=None, *, rtol=None) -> LocalDimension:
    """:func:`local_dimension` at every entry of a leading axis (snapshots of a trajectory, points of a batch).

    Entries with non-finite parameters (snapshots after a trajectory stopped are NaN) get rank -1 and NaN spectra.
    """
    x = _sample(problem, x)

    def one(theta):
        ld = local_dimension(problem, theta, x, rtol=rtol)
        ok = jnp.all(jnp.isfinite(ravel_pytree(theta)[0]))
        return eqx.tree_at(lambda d: d.rank, ld, jnp.where(ok, ld.rank, -1))

    return jax.vmap(one)(thetas)


def activation_patterns(problem, theta, x=None):
    """Per hidden layer, the boolean activation pattern 1[z_j(x_i) > 0], a tuple of (n, n_l) arrays."""
    network, _ = _predictor(problem)
    params = _full(problem, theta)
    x = _sample(problem, x)
    if isinstance(network, TwoLayer):
        return (jax.vmap(lambda xi: network.preactivations(params, xi) > 0)(x),)
    pats, h = [], x
    for layer in params["layers"]:
        z = h @ layer["w"].T
        if network.bias:
            z = z + layer["b"]
        pats.append(z > 0)
        h = network.activation(z)
    return tuple(pats)


def _has_dead_region(activation) -> bool:
    return isinstance(activation, ReLU | ReLUPower)


def dead_neurons(problem, theta, x=None):
    """Per hidden layer, (n_l,) booleans: the neuron is inactive (sigma = sigma' = 0) on every input of x.

    Only ReLU and ReLU^p have such a region; for other activations every entry is False.
    """
    network, _ = _predictor(problem)
    pats = activation_patterns(problem, theta, x)
    if not _has_dead_region(network.activation):
        return tuple(jnp.zeros(p.shape[1], bool) for p in pats)
    return tuple(~jnp.any(p, axis=0) for p in pats)


def dimension_bound(problem, theta, x=None):
    """(bound, n_dead): P - #alive hidden neurons with a rescaling - #trainable weights touching a dead neuron.

    Rescalings exist for positively homogeneous activations (``activation.homogeneity``); a last-layer rescaling
    needs trainable output weights. A weight (or bias) touches a dead neuron if it enters it or leaves it. Jittable.
    """
    network, _ = _predictor(problem)
    x = _sample(problem, x)
    dead = dead_neurons(problem, theta, x)
    frozen = _frozen(problem)
    homogeneous = network.activation.homogeneity is not None
    P = ravel_pytree(theta)[0].shape[0]
    null = 0
    if isinstance(network, TwoLayer):
        d = dead[0]
        null = null + jnp.sum(d) * (x.shape[1] + int(network.bias) + int("a" not in frozen))
    else:
        prev = None
        for layer, d in zip(theta["layers"], dead, strict=True):
            touch = d[:, None] if prev is None else (d[:, None] | prev[None, :])
            null = null + jnp.sum(jnp.broadcast_to(touch, layer["w"].shape))
            if network.bias:
                null = null + jnp.sum(d)
            prev = d
        if "a" in theta:
            null = null + jnp.sum(jnp.broadcast_to(prev.reshape(-1, *([1] * (theta["a"].ndim - 1))),
                                                   theta["a"].shape))
    rescalings = 0
    if homogeneous:
        for i, d in enumerate(dead):
            if i == len(dead) - 1 and "a" in frozen:
                continue
            rescalings = rescalings + jnp.sum(~d)
    n_dead = sum(jnp.sum(d) for d in dead)
    return jnp.asarray(P - rescalings - null, jnp.int32), jnp.asarray(n_dead, jnp.int32)


def linear_regions(problem, theta, x=None) -> int:
    """Number of distinct activation patterns (all hidden layers together) over the sample: host-side count.

    For a shallow ReLU net, the linear regions of x -> f(x) that the sample visits (README, science section 4).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=2, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=64, d=2, key=jax.random.key(0)))
        >>> ls.linear_regions(problem, {"w": jnp.eye(2), "a": jnp.ones(2)})  # two neurons cut the plane in 4
        4
    """
    pats = np.concatenate([np.asarray(p) for p in activation_patterns(problem, theta, x)], axis=1)
    return int(np.unique(np.packbits(pats, axis=1), axis=0).shape[0])


class MatfreeRank(eqx.Module):
    """A matrix-free rank estimate.

    Attributes:
        rank: the estimate (mean over probes); ``sem`` its standard error over probe vectors.
        s_max: the largest singular value of J (square root of the top Ritz value of J^T J).
        tau: the threshold rtol * s_max on singular values.
        resolved: fraction of probes whose Lanczos run separated the null space (a Ritz value below tau^2, or an
            exhausted Krylov space). Below 1 the estimate is not trustworthy (it tends to count null directions):
            raise ``num_matvecs`` to about s_max / s_rank, the condition number of J on its range.
        ritz: the Ritz values of J^T J from the first probe.
    """

    rank: jax.Array
    sem: jax.Array
    s_max: jax.Array
    tau: jax.Array
    resolved: jax.Array
    ritz: jax.Array


def local_dimension_matfree(problem, theta, x=None, *, key, rtol=1e-6, num_matvecs: int = 60,
                            num_samples: int = 50) -> MatfreeRank:
    """Rank of J without forming it: rank = tr 1[J^T J > tau^2] by stochastic Lanczos quadrature.

        rank ~ P / N_s sum_s sum_k (e_1^T y_k^(s))^2 1[theta_k^(s) > tau^2],   tau = rtol * s_max

    with (theta_k, y_k) the eigenpairs of the Lanczos tridiagonal matrix T^(s) (``num_matvecs`` steps, full
    reorthogonalisation: matfree's ``decomp.tridiag_sym``) started from Rademacher probes, and s_max^2 the top Ritz
    value. Products v -> J^T (J v) by one jvp and one vjp of theta -> (f(x_i)); memory O(P num_matvecs). When the
    Krylov space is exhausted (an off-diagonal of T below 1e-12 |T|: the probe lies in an invariant subspace), T is
    cut there and the quadrature is exact for that probe. Unbiased up to the quadrature error of the step function,
    which is small only once the lowest Ritz value has separated from the smallest nonzero eigenvalue: that takes
    about s_max / s_rank Lanczos steps (``MatfreeRank.resolved`` reports whether it happened). Singular values are
    resolved down to about sqrt(eps) s_max (J^T J squares the spectrum), so ``rtol`` should sit in the spectral gap
    (default 1e-6). Check it against :func:`local_dimension` where both fit.

    Args:
        problem, theta, x: as in :func:`local_dimension`.
        key: PRNG key for the probes (keyword-only).
        rtol: relative threshold on singular values.
        num_matvecs: Lanczos steps per probe (static; at most P).
        num_samples: probe vectors (static).

    Returns:
        A :class:`MatfreeRank`.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=2, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=64, d=2, key=jax.random.key(0)))
        >>> theta = {"w": jnp.eye(2), "a": jnp.ones(2)}  # P = 6, two rescalings: rank 4
        >>> est = ls.local_dimension_matfree(problem, theta, key=jax.random.key(1), num_matvecs=6)
        >>> round(float(est.rank)), float(est.resolved), int(ls.local_dimension(problem, theta).rank)
        (4, 1.0, 4)

    References:
        Ubaru & Saad, Fast methods for estimating the numerical rank of large matrices, ICML 2016.
    """
    from matfree import decomp

    _, predict = _predictor(problem)
    x = _sample(problem, x)
    flat, unravel = ravel_pytree(theta)
    P = flat.shape[0]
    k = int(min(num_matvecs, P))
    outputs = lambda z: jax.vmap(lambda xi: predict(unravel(z), xi))(x).reshape(-1)  # noqa: E731
    _, vjp = jax.vjp(outputs, flat)
    _, jvp_lin = jax.linearize(outputs, flat)
    gram = lambda v: vjp(jvp_lin(v))[0]  # noqa: E731
    tridiag = decomp.tridiag_sym(k, materialize=False, reortho="full", custom_vjp=False)

    def ritz_pairs(v):
        """Eigenvalues and squared first components of T for the unit probe v, T cut at a breakdown."""
        diag, off = tridiag(gram, v).J_small
        scale = jnp.max(jnp.abs(jnp.where(jnp.isfinite(diag), diag, 0.0)))
        ok = jnp.cumprod(jnp.isfinite(off) & (jnp.abs(off) > 1e-12 * scale)).astype(bool)
        keep = jnp.concatenate([jnp.ones(1, bool), ok])
        diag = jnp.where(keep & jnp.isfinite(diag), diag, 0.0)
        off = jnp.where(ok, off, 0.0)
        T = jnp.diag(diag) + jnp.diag(off, 1) + jnp.diag(off, -1)
        lam, vecs = jnp.linalg.eigh(T)
        return lam, vecs[0] ** 2, ~jnp.all(ok)

    k0, k1 = jax.random.split(key)
    v0 = jax.random.rademacher(k0, (P,), dtype=flat.dtype)
    ritz, _, _ = ritz_pairs(v0 / jnp.linalg.norm(v0))
    lam_max = jnp.maximum(ritz[-1], 0.0)
    tau = rtol * jnp.sqrt(lam_max)
    probes = jax.random.rademacher(k1, (int(num_samples), P), dtype=flat.dtype) / jnp.sqrt(P)

    def count(v):
        lam, weight, exhausted = ritz_pairs(v)
        return P * jnp.sum(weight * (lam > tau**2)), exhausted | (lam[0] <= tau**2)

    values, resolved = jax.lax.map(count, probes)
    return MatfreeRank(rank=jnp.mean(values), sem=jnp.std(values) / jnp.sqrt(values.shape[0]),
                       s_max=jnp.sqrt(lam_max), tau=tau, resolved=jnp.mean(resolved), ritz=ritz)


class LocalDimensionAnalyzer(AbstractAnalyzer):
    """Local dimension at each point as an analyzer: columns ``local_dim``, ``local_dim_gap``, ``local_dim_bound``,
    ``n_dead``; per-point array ``jacobian_singular_values``. Needs a sample (``x``, or the problem's own)."""

    name = "local_dimension"
    x: jax.Array | None = None

    def __call__(self, problem, point, previous):
        ld = local_dimension(problem, point.theta, self.x)
        return {"local_dim": ld.rank, "local_dim_gap": ld.gap, "local_dim_bound": ld.bound, "n_dead": ld.n_dead,
                "jacobian_singular_values": ld.singular_values}
