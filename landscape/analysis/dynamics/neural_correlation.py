"""The neural correlation function N(theta) and its KKT points on the unit sphere (Kumar & Haupt 2024).

For a network H(x; theta) positively homogeneous of order L in its trainable weights (two-layer nets without biases
with relu, leaky relu or relu^p: L = p + 1 with trained output weights, p with frozen ones; deep (leaky) ReLU MLPs
without biases: L = number of trained weight layers) and labels y, the neural correlation function is

    N(theta) = E[y(x) H(x; theta)]   (sample: (1/n) sum_i y_i H(x_i; theta);  population, two-layer: a^T K(W, V) c)

with the sample mean matching the loss 1/(2n) sum (f - y)^2, so that near the origin the gradient flow of the loss
is d theta / dt ~ grad N(theta) (README, science section 3). Its KKT points on the unit sphere,

    max N(theta)  s.t.  |theta| = 1,      grad N(theta) = lambda theta,  lambda = L N(theta)  (Euler),

are the directions the flow from a small initialisation converges to. :func:`kkt_points` finds them from many
starts at once: projected gradient ascent on the sphere (one ``jit(vmap)``), then Levenberg-Marquardt on the KKT
system F(theta) = (grad N - L N theta, (|theta|^2 - 1) / 2) = 0 until |grad N - L N theta| <= ``tol``
(default 1e-12), then deduplication modulo the network's symmetries: two-layer points are compared by their
reduced networks (:func:`landscape.analysis.symmetry.reduce.reduce_two_layer`: permutations, positive rescaling
and neurons sharing a direction), up to neuron permutation (optimal assignment).

Rank-one KKT points (two-layer nets, trained output weights): W = b u^T, every live neuron w_j = b_j u along one
direction u up to sign. Writing n(s) = E[y sigma(s . x)] (the NCF of one neuron with a = 1) and s_j = sign(b_j) u,
such a point of the unit sphere is a KKT point if and only if (derived here for the two-layer case of the paper's
characterisation; checked numerically on the points found, see tests/test_dynamics.py):

    (i)   grad n(s) = p n(s) s for each occupied direction s (s is a KKT point of the one-neuron problem),
    (ii)  |w_j|^2 = p a_j^2 (balanced neurons),
    (iii) |w_j|^p n(s_j) / a_j = lambda = L N for every live neuron j (so sign a_j = sign n(s_j) when N > 0).

Proof sketch: grad_{a_j} N = |w_j|^p n(s_j), grad_{w_j} N = a_j |w_j|^(p-1) grad n(s_j); (iii) is the a_j row of
the KKT system, (i) makes the w_j row parallel to w_j and then (ii) is its norm. For p = 1 (relu, leaky relu)
(iii) says both occupied directions have n(s) = lambda and any split of the output weight within a direction
stays a KKT point (a continuum); for p >= 2 every neuron of one direction carries the same |a_j|.

References:
    Kumar & Haupt, `Early Directional Convergence in Deep Homogeneous Neural Networks for Small Initializations
    <https://arxiv.org/abs/2403.08121>`_, 2024; `Directional Convergence Near Small Initializations and Saddles in
    Two-Homogeneous Neural Networks <https://arxiv.org/abs/2402.09226>`_, 2024.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ...flow.programs import persistent_jit
from ...problem.networks import MLP, TwoLayer
from ...problem.population import kernel_matrix
from ..symmetry.canonical import distance_mod_symmetry
from ..symmetry.reduce import Tolerances, reduce_two_layer

__all__ = ["homogeneity_order", "neural_correlation", "kkt_residual", "KKTPoints", "kkt_points",
           "rank_one_condition", "one_neuron_correlation"]


def homogeneity_order(problem) -> int:
    """The order L of positive homogeneity of the student in its trainable weights, H(c theta) = c^L H(theta).

    Raises:
        ValueError: for students with biases, activations without positive homogeneity, or deep nets whose
            activation is not 1-homogeneous (relu, leaky relu).
    """
    student = problem.student
    act = student.activation
    if student.bias:
        raise ValueError("the neural correlation function needs a homogeneous student: drop the biases")
    if act.homogeneity is None:
        raise ValueError(f"activation {act.label!r} is not positively homogeneous; use relu, leaky_relu or relu^p")
    p = int(round(act.homogeneity))
    trained_a = "a" not in problem.frozen
    if isinstance(student, TwoLayer):
        return p + int(trained_a)
    if isinstance(student, MLP):
        if p != 1:
            raise ValueError(f"deep nets with {act.label!r} are not handled; use relu or leaky_relu for deep nets")
        return len(student.hidden_widths) + int(trained_a)
    raise ValueError(f"unknown student type {type(student).__name__}")


def neural_correlation(problem, theta):
    """N(theta) = E[y H(x; theta)] for ONE trainable parameter set (pure, jittable, vmappable); a scalar.

    Sample loss: the mean over the sample, (1/n) sum_i y_i f(x_i; theta). Population loss (two-layer, no biases):
    a^T K(W, V) c with the closed-form kernels K(W, V)_ij = E[sigma(w_i . x) sigma(v_j . x)].

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=2, width=1), ls.TwoLayer(width=1))
        >>> round(float(ls.neural_correlation(problem, {"w": jnp.array([[1.0, 0.0]]), "a": jnp.ones(1)})), 6)
        0.5
    """
    full = problem.full_params(theta)
    if problem.loss_kind == "sample":
        f = jax.vmap(lambda x: problem.student.apply(full, x))(problem.x)
        return jnp.mean(problem.y * f)
    tp = problem.teacher.params
    w, v = full["w"], tp["w"]
    k = kernel_matrix(problem.student.activation, w, jnp.zeros(w.shape[0], w.dtype), v,
                      jnp.zeros(v.shape[0], v.dtype))
    return full["a"] @ k @ tp["a"]


def kkt_residual(problem, theta, order: int | None = None):
    """|grad N(t) - L N(t) t| at the unit vector t = theta / |theta| (zero exactly at KKT points); a scalar."""
    order = homogeneity_order(problem) if order is None else order
    flat, unravel = ravel_pytree(theta)
    t = flat / jnp.linalg.norm(flat)
    n, g = jax.value_and_grad(lambda z: neural_correlation(problem, unravel(z)))(t)
    return jnp.linalg.norm(g - order * n * t)


def _flat_fns(problem, template, order):
    _, unravel = ravel_pytree(template)
    ncf = lambda z: neural_correlation(problem, unravel(z))  # noqa: E731
    grad = jax.grad(ncf)

    def kkt_system(z):
        return jnp.concatenate([grad(z) - order * ncf(z) * z, 0.5 * (z @ z - 1.0)[None]])

    return ncf, grad, kkt_system


@persistent_jit
def _search(problem, z0, template, order: int, step, ascent_steps: int, newton_iter: int):
    """Ascent on the sphere then Levenberg-Marquardt on the KKT system, for a batch z0 (n, P) of flat starts."""
    ncf, grad, kkt_system = _flat_fns(problem, template, order)
    g0 = jax.vmap(lambda z: jnp.linalg.norm(grad(z)))(z0)
    eta = step / jnp.maximum(jnp.median(g0), 1e-300)

    def ascend(z):
        def body(_, z):
            z = z + eta * grad(z)
            return z / jnp.linalg.norm(z)

        return jax.lax.fori_loop(0, ascent_steps, body, z)

    def newton(z):
        def body(_, state):
            z, c = state
            f = kkt_system(z)
            jac = jax.jacfwd(kkt_system)(z)
            fn2 = f @ f
            mu = c * fn2
            jtj = jac.T @ jac
            step_ = -jnp.linalg.solve(jtj + mu * jnp.eye(z.shape[0]), jac.T @ f)
            z_new = z + step_
            f_new = kkt_system(z_new)
            ok = jnp.all(jnp.isfinite(f_new)) & (f_new @ f_new < fn2)
            return jnp.where(ok, z_new, z), jnp.clip(jnp.where(ok, c / 4.0, c * 4.0), 1e-12, 1e20)

        z, _ = jax.lax.fori_loop(0, newton_iter, body, (z, jnp.asarray(1.0, z.dtype)))
        return z / jnp.linalg.norm(z)

    z = jax.vmap(ascend)(z0)
    z = jax.vmap(newton)(z)
    value = jax.vmap(ncf)(z)
    residual = jax.vmap(lambda t: jnp.linalg.norm(grad(t) - order * ncf(t) * t))(z)
    return z, value, residual


@dataclass(frozen=True)
class KKTPoints:
    """Distinct KKT points of N on the unit sphere, best first (host numpy; see :func:`kkt_points`).

    Attributes:
        theta: trainable parameter dict, every leaf with a leading axis k (one row per distinct point).
        value: (k,) N at the point; lambda = order * value.
        residual: (k,) |grad N - L N theta|.
        count: (k,) how many starts converged to it.
        rank_one: (k,) the live incoming weight matrix has rank one (two-layer nets; False otherwise).
        reduced_width: (k,) width of the reduced network (two-layer nets; -1 otherwise).
        condition: (k,) violation of the rank-one characterisation (module docstring; NaN if not rank-one or
            not applicable): ~1e-12 at rank-one KKT points.
        order: L; tol: the residual tolerance; n_starts: starts used; n_converged: starts with residual <= tol;
        n_zero: converged starts at KKT points with N = 0 (dropped with ``positive``).
    """

    theta: dict
    value: np.ndarray
    residual: np.ndarray
    count: np.ndarray
    rank_one: np.ndarray
    reduced_width: np.ndarray
    condition: np.ndarray
    order: int
    tol: float
    n_starts: int
    n_converged: int
    n_zero: int = 0

    def __len__(self) -> int:
        return len(self.value)

    def point(self, i: int) -> dict:
        """The i-th KKT point as a trainable parameter dict."""
        return {k: v[i] for k, v in self.theta.items()}

    def table(self):
        """pandas DataFrame: one row per distinct KKT point (value, lambda, residual, count, rank, width)."""
        import pandas as pd

        return pd.DataFrame({"N": self.value, "lambda": self.order * self.value, "residual": self.residual,
                             "count": self.count, "rank_one": self.rank_one, "reduced_width": self.reduced_width,
                             "rank_one_condition": self.condition})


def _rank_one(w, rel_tol=1e-6):
    """(is rank one, unit direction u) of the rows of w with non-negligible norm."""
    nrm = np.linalg.norm(w, axis=1)
    live = nrm > rel_tol * max(float(nrm.max(initial=0.0)), 1e-300)
    if not np.any(live):
        return False, None
    s, vt = np.linalg.svd(w[live], full_matrices=False)[1:]
    return bool(len(s) < 2 or s[1] <= rel_tol * s[0]), vt[0]


def _one_neuron_problem(problem):
    return problem.with_student(TwoLayer(width=1, activation=problem.student.activation,
                                         input_dim=problem.student.input_dim))


def one_neuron_correlation(problem, s):
    """n(s) = E[y sigma(s . x)]: N of a single neuron with incoming vector s (d,) and output weight 1."""
    return neural_correlation(_one_neuron_problem(problem), {"w": s[None, :], "a": jnp.ones(1, s.dtype)})


@persistent_jit
def _one_value_and_grad(one, s):
    return jax.value_and_grad(lambda z: neural_correlation(one, {"w": z[None, :], "a": jnp.ones(1, z.dtype)}))(s)


def rank_one_condition(problem, theta, order: int | None = None, rel_tol: float = 1e-6) -> float:
    """Violation of the rank-one KKT characterisation (module docstring) at a rank-one point of the unit sphere.

    Returns the max over live neurons j of the violations of (i) |a_j| |w_j|^(p-1) |grad n(s_j) - p n(s_j) s_j|,
    (ii) | |w_j|^2 - p a_j^2 | and (iii) |lambda a_j - |w_j|^p n(s_j)| (each scaled like the KKT residual, so
    ~1e-15 at a rank-one KKT point); NaN when ``theta`` is not rank-one or the student is not a two-layer net with
    trained output weights.
    """
    order = homogeneity_order(problem) if order is None else order
    if not isinstance(problem.student, TwoLayer) or "a" in problem.frozen:
        return float("nan")
    p = order - 1
    w, a = np.asarray(theta["w"], float), np.asarray(theta["a"], float)
    ok, u = _rank_one(w, rel_tol)
    if not ok:
        return float("nan")
    lam = order * float(neural_correlation(problem, {"w": jnp.asarray(w), "a": jnp.asarray(a)}))
    one = _one_neuron_problem(problem)
    nrm = np.linalg.norm(w, axis=1)
    live = nrm > rel_tol * nrm.max()
    worst = 0.0
    for j in np.flatnonzero(live):
        s = np.sign(w[j] @ u) * u
        n, g = (np.asarray(x, float) for x in _one_value_and_grad(one, jnp.asarray(s)))
        worst = max(worst,
                    abs(a[j]) * nrm[j] ** (p - 1) * float(np.linalg.norm(g - p * n * s)),  # (i), scaled as its row
                    abs(nrm[j] ** 2 - p * a[j] ** 2),  # (ii)
                    abs(lam * a[j] - nrm[j] ** p * n))  # (iii), the a_j row of the KKT system
    return worst


def _same(problem, red_i, red_j, tol) -> bool:
    if red_i.r != red_j.r:
        return False
    if red_i.r == 0:
        return True
    dist, _ = distance_mod_symmetry(red_i.reduced, red_j.reduced, problem.student.activation)
    return dist <= tol


def kkt_points(problem, *, key, n: int = 256, ascent_steps: int = 2000, step: float = 0.05,
               newton_iter: int = 40, tol: float = 1e-12, dedupe_tol: float = 1e-6,
               positive: bool = True) -> KKTPoints:
    """KKT points of the neural correlation function on the unit sphere, from ``n`` random starts (vmapped).

    Starts are uniform on the sphere; each runs ``ascent_steps`` of projected gradient ascent
    z <- (z + eta grad N) / |...| (eta = ``step`` / median |grad N| at the starts), then ``newton_iter``
    Levenberg-Marquardt iterations on the KKT system (module docstring). Starts whose residual is above ``tol``
    are dropped (counted in ``n_starts - n_converged``); the rest are deduplicated modulo symmetry (two-layer nets:
    reduced networks within ``dedupe_tol`` after optimal neuron assignment; deep nets: distance of the flat
    vectors) and sorted by N, largest first.

    Args:
        problem: a :class:`landscape.TeacherStudent` with a homogeneous student (:func:`homogeneity_order`).
        key: PRNG key for the starts (keyword-only).
        n: number of starts.
        ascent_steps, step, newton_iter: the two stages (static counts, traced step).
        tol: KKT residual a point must reach (default 1e-12).
        dedupe_tol: distance below which two points are the same.
        positive: keep only points with N > 1e-12 max|N| (the KKT points the flow can escape along; ReLU-type nets
            also have whole regions of KKT points with N = 0 and grad N = 0, counted in ``n_zero``).

    Returns:
        :class:`KKTPoints`.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> teacher = ls.Teacher.orthonormal(d=3, width=1)
        >>> problem = ls.TeacherStudent(teacher, ls.TwoLayer(width=1, activation=ls.ReLUPower(2)))
        >>> kkt = ls.kkt_points(problem, key=jax.random.key(0), n=8)  # doctest: +SKIP
        >>> round(float(kkt.value[0]), 6), bool(kkt.residual[0] <= 1e-12)  # N* = 1 / sqrt(3)  # doctest: +SKIP
        (0.57735, True)
    """
    order = homogeneity_order(problem)
    template = jax.tree.map(lambda s: jnp.zeros(s), problem.trainable_shapes,
                            is_leaf=lambda s: isinstance(s, tuple) and all(isinstance(i, int) for i in s))
    flat0, unravel = ravel_pytree(template)
    z0 = jax.random.normal(key, (n, flat0.shape[0]))
    z0 = z0 / jnp.linalg.norm(z0, axis=1, keepdims=True)
    z, value, residual = _search(problem, z0, template, order, jnp.asarray(step, float), int(ascent_steps),
                                 int(newton_iter))
    z, value, residual = np.asarray(z), np.asarray(value), np.asarray(residual)
    good = np.flatnonzero(np.isfinite(residual) & (residual <= tol))
    n_converged = len(good)
    scale = float(np.max(np.abs(value[good]), initial=0.0))
    zero = np.abs(value[good]) <= 1e-12 * scale
    n_zero = int(np.sum(zero))
    if positive:
        good = good[value[good] > 1e-12 * scale]
    good = good[np.argsort(-value[good], kind="stable")]
    two_layer = isinstance(problem.student, TwoLayer)
    reps, counts, reds = [], [], []
    for i in good:
        th = jax.tree.map(np.asarray, unravel(jnp.asarray(z[i])))
        red = reduce_two_layer(problem.full_params(th), problem.student.activation,
                               tol=Tolerances(a_tol=1e-7, u_tol=1e-6)) if two_layer else None
        for k, j in enumerate(reps):
            if two_layer:
                same = _same(problem, red, reds[k], dedupe_tol)
            else:
                same = np.linalg.norm(z[i] - z[j]) <= dedupe_tol
            if same:
                counts[k] += 1
                break
        else:
            reps.append(i)
            counts.append(1)
            reds.append(red)
    thetas = [jax.tree.map(np.asarray, unravel(jnp.asarray(z[i]))) for i in reps]
    if thetas:
        theta = jax.tree.map(lambda *xs: np.stack(xs), *thetas)
    else:
        theta = jax.tree.map(lambda x: np.zeros((0, *np.shape(x))), template)
    rank_one = np.array([two_layer and _rank_one(np.asarray(t["w"]))[0] for t in thetas], bool)
    cond = np.array([rank_one_condition(problem, t, order) if r else np.nan for t, r in zip(thetas, rank_one,
                                                                                           strict=True)], float)
    return KKTPoints(theta=theta, value=value[reps], residual=residual[reps], count=np.asarray(counts, int),
                     rank_one=rank_one, reduced_width=np.array([r.r if r is not None else -1 for r in reds], int),
                     condition=cond, order=order, tol=float(tol), n_starts=int(n), n_converged=int(n_converged),
                     n_zero=n_zero)
