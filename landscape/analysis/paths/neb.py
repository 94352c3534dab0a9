"""Minimum-energy paths between two minima: nudged elastic band with a climbing image, then a certified saddle.

A chain of K images x_1..x_K between fixed end points x_0 = theta_A and x_{K+1} = theta_B (flattened trainable
vectors) relaxes under the NEB force (Henkelman, Uberuaga & Jónsson 2000; tangent of Henkelman & Jónsson 2000)

    F_i = -(grad L(x_i) - (grad L(x_i) . tau_i) tau_i) + k (|x_{i+1} - x_i| - |x_i - x_{i-1}|) tau_i,

with tau_i the energy-upwinded unit tangent. After ``climb_after`` iterations the highest image climbs: it feels
F = -grad L + 2 (grad L . tau) tau and no spring, so it converges to the saddle point on the path. All images are
evaluated in one ``vmap``; the band relaxes with FIRE (Bitzek et al. 2006) inside one ``lax.while_loop``, until
max_i |F_i| <= ``force_tol``. For p-homogeneous activations (ReLU) the loss is flat along the rescaling orbits
(u_j, a_j) -> (s u_j, a_j / s^p); images would drift along them, so every image is balanced after each step
(:func:`balance`) and forces lose their components along the orbits (:func:`remove_rescaling`).
Then the climbing image is polished by Levenberg-Marquardt/Newton
(:func:`landscape.polish`) into a critical point certified in float64 (|grad L| <= ``polish_tol``), its dense
Hessian is diagonalised, it is classified (:func:`landscape.classify`: an index-1 saddle has exactly one eigenvalue
below -zero_tol max|lambda|) and identified by the symmetry analyzer (which narrower network it is embedded from:
``reduced_width``, ``subspace_label``). The barrier is L(saddle) - L(end point) on either side.

The initial band is the straight line between the end points plus a small random perturbation (``noise``): a band
that starts on a symmetry-fixed set (e.g. the straight line between two permuted minima, which is invariant under
the permutation) stays on it, and its climbing image then converges to the highest critical point of the fixed set,
which need not have index 1; the perturbation lets the band leave the fixed set.

References:
    Henkelman, Uberuaga, Jónsson, A climbing image nudged elastic band method for finding saddle points and minimum
    energy paths, J. Chem. Phys. 113, 9901 (2000).

    Henkelman & Jónsson, Improved tangent estimate in the nudged elastic band method, J. Chem. Phys. 113, 9978 (2000).

    Bitzek, Koskinen, Gähler, Moseler, Gumbsch, Structural relaxation made simple, Phys. Rev. Lett. 97 (2006).

    Draxler, Veschgini, Salmhofer, Hamprecht, Essentially no barriers in neural network energy landscape, ICML 2018.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ...flow.polish import polish
from ...flow.programs import persistent_jit
from ..classify import classify, kind_names
from ..hessian import hessian_matrix
from ..symmetry.analyze import analyze_point

__all__ = ["NEB", "NEBResult", "Saddle", "neb", "certify_saddle", "balancer", "balance", "remove_rescaling"]


@dataclass(frozen=True)
class NEB:
    """Settings of the nudged elastic band (numbers; see the module docstring).

    Attributes:
        n_images: movable images K between the end points.
        spring: spring constant k (loss units per squared parameter distance).
        dt: initial FIRE time step; dt_max: its cap.
        max_iter: FIRE iterations at most.
        climb_after: iterations before the highest image starts to climb.
        force_tol: stop when max_i |F_i| <= force_tol.
        noise: standard deviation of the perturbation of the initial straight band, relative to
            |theta_B - theta_A| / sqrt(P) (0: none).
        balance: for p-homogeneous activations with trained output weights, balance every neuron of every image
            (and of the end points) after each step (:func:`balance`), so that images cannot drift along the flat
            rescaling orbits.

    Example:
        >>> from landscape.analysis.paths import NEB
        >>> NEB(n_images=21, spring=0.5).climb_after
        200
    """

    n_images: int = 15
    spring: float = 1.0
    dt: float = 0.02
    dt_max: float = 0.2
    max_iter: int = 4000
    climb_after: int = 200
    force_tol: float = 1e-6
    noise: float = 1e-2
    balance: bool = True


@dataclass(frozen=True)
class Saddle:
    """A polished critical point (numpy, host side): loss, gradient norm, spectrum, class and symmetry identity.

    Attributes:
        theta: trainable dict; loss: accurate loss; grad_norm: |grad L|; certified: grad_norm <= tol.
        eigenvalues: sorted Hessian eigenvalues; index: number below -zero_tol_abs; null_dim: |lambda| <= that.
        kind: ``minimum`` / ``saddle`` / ``degenerate`` / ... from :func:`landscape.classify` with the symmetry
            analyzer's explained null directions.
        sym_class, subspace_label, reduced_width, partition: the symmetry analyzer's identification (the point is
            embedded from a critical point of width ``reduced_width``).
        distance_from_start: how far polishing moved the point.
    """

    theta: dict
    loss: float
    grad_norm: float
    certified: bool
    eigenvalues: np.ndarray
    index: int
    null_dim: int
    zero_tol_abs: float
    kind: str
    sym_class: str
    subspace_label: str
    reduced_width: int
    partition: str
    distance_from_start: float
    symmetry_text: str = ""

    def summary(self) -> dict:
        return {"loss": self.loss, "grad_norm": self.grad_norm, "certified": self.certified, "index": self.index,
                "null_dim": self.null_dim, "kind": self.kind, "sym_class": self.sym_class,
                "subspace_label": self.subspace_label, "reduced_width": self.reduced_width,
                "partition": self.partition, "min_eig": float(self.eigenvalues[0]),
                "max_eig": float(self.eigenvalues[-1]), "zero_tol_abs": self.zero_tol_abs,
                "distance_from_start": self.distance_from_start, "symmetry_text": self.symmetry_text}


@dataclass(frozen=True)
class NEBResult:
    """The relaxed band and the certified saddle from its climbing image (numpy, host side).

    Attributes:
        images: trainable dict, leaves with a leading axis K + 2 (end points included).
        loss: (K + 2,) accurate loss of the images; s: (K + 2,) cumulative arc length along the band.
        top: index of the climbing (highest) image.
        n_iter: FIRE iterations; max_force: final max_i |F_i|; converged: max_force <= force_tol.
        saddle: :class:`Saddle` polished from the climbing image.
        barrier_from, barrier_to: L(saddle) - L(theta_A), L(saddle) - L(theta_B).
        band_barrier: max image loss - max end-point loss (before polishing).
    """

    images: dict
    loss: np.ndarray
    s: np.ndarray
    top: int
    n_iter: int
    max_force: float
    converged: bool
    saddle: Saddle
    barrier_from: float
    barrier_to: float
    band_barrier: float
    settings: NEB = field(default_factory=NEB)

    def summary(self) -> dict:
        return {"n_images": int(self.loss.size - 2), "n_iter": self.n_iter, "max_force": self.max_force,
                "converged": self.converged, "top": self.top, "band_barrier": self.band_barrier,
                "barrier_from": self.barrier_from, "barrier_to": self.barrier_to,
                "path_length": float(self.s[-1]), "loss_profile": [float(x) for x in self.loss],
                "saddle": self.saddle.summary()}


def _tangents(x, e):
    """Upwinded unit tangents (Henkelman & Jónsson 2000) of the interior images; x (K+2, P), e (K+2,)."""
    tp, tm = x[2:] - x[1:-1], x[1:-1] - x[:-2]
    ep, e0, em = e[2:], e[1:-1], e[:-2]
    dmax = jnp.maximum(jnp.abs(ep - e0), jnp.abs(em - e0))[:, None]
    dmin = jnp.minimum(jnp.abs(ep - e0), jnp.abs(em - e0))[:, None]
    mixed = jnp.where((ep > em)[:, None], tp * dmax + tm * dmin, tp * dmin + tm * dmax)
    up = ((ep > e0) & (e0 > em))[:, None]
    down = ((ep < e0) & (e0 < em))[:, None]
    tau = jnp.where(up, tp, jnp.where(down, tm, mixed))
    norm = jnp.linalg.norm(tau, axis=1, keepdims=True)
    return tau / jnp.where(norm > 0, norm, 1.0), jnp.linalg.norm(tp, axis=1), jnp.linalg.norm(tm, axis=1)


def balancer(problem):
    """``(p, bias)`` when neurons of ``problem`` can be balanced (:func:`balance`), else None.

    Balancing applies to p-homogeneous activations with trained output weights (two-layer students).
    """
    from ...problem.networks import TwoLayer

    p = problem.student.activation.homogeneity
    if p is None or not isinstance(problem.student, TwoLayer) or "a" not in problem.trainable_shapes:
        return None
    return float(p), "b" in problem.trainable_shapes


def balance(theta, p: float, bias: bool):
    """Balance every neuron: (u_j, a_j) -> (s u_j, a_j / s^p), s = (|a_j| / |u_j|)^(1 / (p + 1)), u_j = (w_j, b_j).

    For a p-homogeneous activation this is an exact symmetry (same function, same loss) after which |a_j| = |s u_j|.
    The loss is flat along these orbits, so NEB images drift along them (their norms grow without bound); balancing
    every image after each step quotients the orbits out. Neurons with u_j = 0 or a_j = 0 are left alone. One
    trainable dict; pure, jittable, vmappable.

    Example:
        >>> import jax.numpy as jnp
        >>> from landscape.analysis.paths.neb import balance
        >>> out = balance({"w": jnp.array([[4.0, 0.0]]), "a": jnp.array([1.0])}, 1.0, False)
        >>> out["w"].tolist(), out["a"].tolist()
        ([[2.0, 0.0]], [2.0])
    """
    nu = jnp.sqrt(jnp.sum(theta["w"] ** 2, axis=1) + (theta["b"] ** 2 if bias else 0.0))
    na = jnp.abs(theta["a"])
    ok = (nu > 1e-12) & (na > 1e-12)
    sc = jnp.where(ok, (jnp.where(ok, na, 1.0) / jnp.where(ok, nu, 1.0)) ** (1.0 / (p + 1.0)), 1.0)
    out = {**theta, "w": theta["w"] * sc[:, None], "a": theta["a"] / sc**p}
    if bias:
        out["b"] = theta["b"] * sc
    return out


def remove_rescaling(theta, force, p: float, bias: bool):
    """``force`` without its components along the rescaling orbits at ``theta`` (trainable dicts).

    The orbit of neuron j, s -> (s u_j, a_j / s^p), has the tangent t_j = (u_j, -p a_j) at s = 1; the t_j of
    different neurons are orthogonal, so F -> F - sum_j (F . t_j / |t_j|^2) t_j. NEB forces along these exactly flat
    directions only move images along the orbits, which :func:`balance` undoes.
    """
    tw = theta["w"]
    ta = -p * theta["a"]
    dot = jnp.sum(force["w"] * tw, axis=1) + force["a"] * ta
    nrm = jnp.sum(tw**2, axis=1) + ta**2
    if bias:
        dot, nrm = dot + force["b"] * theta["b"], nrm + theta["b"] ** 2
    coef = jnp.where(nrm > 1e-24, dot / jnp.where(nrm > 1e-24, nrm, 1.0), 0.0)
    out = {**force, "w": force["w"] - coef[:, None] * tw, "a": force["a"] - coef * ta}
    if bias:
        out["b"] = force["b"] - coef * theta["b"]
    return out


@persistent_jit
def _relax(problem, x_ends, x_init, unravel_like, spring, dt0, dt_max, force_tol, climb_after, max_iter,
           balancing=None):
    """FIRE relaxation of the band: returns (images (K+2, P), energies, top, iterations, max force).

    ``balancing``: None or the static ``(p, bias)`` of :func:`balance`, applied to every image after each step.
    """
    _, unravel = ravel_pytree(unravel_like)
    if balancing is None:
        project = lambda xi: xi  # noqa: E731
        tangential = lambda xi, f: f  # noqa: E731
    else:
        project = jax.vmap(lambda z: ravel_pytree(balance(unravel(z), *balancing))[0])
        tangential = jax.vmap(lambda z, fz: ravel_pytree(remove_rescaling(unravel(z), unravel(fz), *balancing))[0])
    value_and_grad = jax.vmap(jax.value_and_grad(lambda z: problem.loss(unravel(z))))

    def forces(xi, it):
        x = jnp.concatenate([x_ends[:1], xi, x_ends[1:]])
        e, g = value_and_grad(x)
        tau, lp, lm = _tangents(x, e)
        gi = g[1:-1]
        gpar = jnp.sum(gi * tau, axis=1, keepdims=True)
        f = -(gi - gpar * tau) + spring * (lp - lm)[:, None] * tau
        top = jnp.argmax(e[1:-1])
        climb = -gi[top] + 2.0 * gpar[top] * tau[top]
        f = jnp.where((it >= climb_after) & (jnp.arange(xi.shape[0]) == top)[:, None], climb[None], f)
        return tangential(xi, f), e, top

    def cond(s):
        it, fmax = s[5], s[6]
        return (it < max_iter) & ((fmax > force_tol) | (it <= climb_after)) & jnp.isfinite(fmax)

    def body(s):
        xi, v, dt, alpha, npos, it, _, f = s
        power = jnp.sum(f * v)
        fn, vn = jnp.linalg.norm(f), jnp.linalg.norm(v)
        mixed = (1.0 - alpha) * v + alpha * vn * f / jnp.where(fn > 0, fn, 1.0)
        ok = power > 0
        v = jnp.where(ok, mixed, 0.0)
        grow = ok & (npos > 5)
        dt = jnp.where(ok, jnp.where(grow, jnp.minimum(1.1 * dt, dt_max), dt), 0.5 * dt)
        alpha = jnp.where(ok, jnp.where(grow, 0.99 * alpha, alpha), 0.1)
        npos = jnp.where(ok, npos + 1, 0)
        v = v + dt * f
        xi = project(xi + dt * v)
        f_new, _, _ = forces(xi, it + 1)
        return xi, v, dt, alpha, npos, it + 1, jnp.max(jnp.linalg.norm(f_new, axis=1)), f_new

    x_init = project(x_init)
    f0, _, _ = forces(x_init, 0)
    s = (x_init, jnp.zeros_like(x_init), jnp.asarray(dt0, x_init.dtype), jnp.asarray(0.1, x_init.dtype),
         jnp.int32(0), jnp.int32(0), jnp.max(jnp.linalg.norm(f0, axis=1)), f0)
    xi, _, _, _, _, it, fmax, _ = jax.lax.while_loop(cond, body, s)
    x = jnp.concatenate([x_ends[:1], xi, x_ends[1:]])
    e = jax.vmap(lambda z: problem.loss_accurate(unravel(z)))(x)
    return x, e, jnp.argmax(e[1:-1]) + 1, it, fmax


@persistent_jit
def _polish_and_hessian(problem, theta, tol, max_iter: int):
    res = polish(problem, theta, tol=tol, max_iter=max_iter)
    return res, problem.loss_accurate(res.theta), hessian_matrix(problem, res.theta)


def certify_saddle(problem, theta, *, polish_tol: float = 1e-10, max_iter: int = 200, zero_tol: float = 1e-7,
                   global_loss_tol: float = 1e-20) -> Saddle:
    """Polish ``theta`` into a certified critical point, classify it and identify it by symmetry.

    Args:
        problem: a :class:`landscape.TeacherStudent` (two-layer student for the symmetry identification).
        theta: trainable dict near a critical point (e.g. a climbing image).
        polish_tol: certification threshold on |grad L|; max_iter: polishing iterations at most.
        zero_tol: relative zero-eigenvalue tolerance of the classification; global_loss_tol: zero-loss threshold.

    Returns:
        :class:`Saddle` (whatever the point turns out to be: ``kind`` and ``index`` say what it is).
    """
    from ...problem.networks import TwoLayer

    res, loss, h = _polish_and_hessian(problem, theta, jnp.asarray(polish_tol, float), int(max_iter))
    th = {k: np.asarray(v, float) for k, v in res.theta.items()}
    h = np.asarray(h, float)
    eigs = np.linalg.eigvalsh(0.5 * (h + h.T))
    gn, loss = float(res.grad_norm), float(loss)
    certified = bool(np.isfinite(gn) and gn <= polish_tol)
    x0 = np.asarray(ravel_pytree(theta)[0], float)
    moved = float(np.linalg.norm(np.asarray(ravel_pytree(res.theta)[0], float) - x0))
    sym = {"sym_class": "not_analyzed", "subspace_label": "", "reduced_width": -1, "partition": "",
           "symmetry_text": ""}
    explained = -1
    if certified and isinstance(problem.student, TwoLayer) and np.all(np.isfinite(h)):
        row = analyze_point(problem, th, loss=loss, hessian=h, zero_tol=zero_tol, global_loss_tol=global_loss_tol)
        sym = {k: row[k] for k in sym}
        explained = int(row["null_dim_explained"])
    c = classify(jnp.asarray(eigs), zero_tol=zero_tol, zero_loss=sym["sym_class"] == "global_minimum",
                 explained=explained, certified=certified, finite=bool(np.all(np.isfinite(eigs))))
    return Saddle(theta=th, loss=loss, grad_norm=gn, certified=certified, eigenvalues=eigs, index=int(c["index"]),
                  null_dim=int(c["null_dim"]), zero_tol_abs=float(zero_tol * np.max(np.abs(eigs))),
                  kind=str(kind_names(c["code"])), sym_class=str(sym["sym_class"]),
                  subspace_label=str(sym["subspace_label"]), reduced_width=int(sym["reduced_width"]),
                  partition=str(sym["partition"]), distance_from_start=moved, symmetry_text=str(sym["symmetry_text"]))


def neb(problem, theta_a, theta_b, settings: NEB | None = None, *, key=None, polish_tol: float = 1e-10,
        zero_tol: float = 1e-7, global_loss_tol: float = 1e-20) -> NEBResult:
    """Climbing-image nudged elastic band from ``theta_a`` to ``theta_b``, then a certified saddle.

    Args:
        problem: a :class:`landscape.TeacherStudent`.
        theta_a, theta_b: trainable dicts of the two end points (minima; they stay fixed).
        settings: :class:`NEB` (default settings if None).
        key: PRNG key of the initial band's perturbation (default ``jax.random.key(0)``).
        polish_tol, zero_tol, global_loss_tol: see :func:`certify_saddle`.

    Returns:
        :class:`NEBResult` with the band, its loss profile, the barrier heights and the polished saddle.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> from landscape.analysis.paths import neb, NEB
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=2, width=2), ls.TwoLayer(width=2))
        >>> a = {"w": jnp.eye(2), "a": jnp.ones(2)}
        >>> b = {"w": jnp.eye(2)[::-1], "a": jnp.ones(2)}
        >>> res = neb(problem, a, b, NEB(n_images=9))  # doctest: +SKIP
        >>> res.saddle.certified, res.saddle.index  # doctest: +SKIP
        (True, 1)
    """
    st = settings or NEB()
    key = jax.random.key(0) if key is None else key
    xa, unravel = ravel_pytree(theta_a)
    xb = ravel_pytree(theta_b)[0]
    if xa.shape != xb.shape:
        raise ValueError("the two end points have different parameter shapes")
    k = int(st.n_images)
    if k < 3:
        raise ValueError(f"NEB needs at least 3 images, got n_images = {k}")
    balancing = balancer(problem) if st.balance else None
    if balancing is not None:  # the balanced representatives of the end points: same loss, same function
        xa, xb = ravel_pytree(balance(theta_a, *balancing))[0], ravel_pytree(balance(theta_b, *balancing))[0]
    ts = jnp.linspace(0.0, 1.0, k + 2)[1:-1, None]
    x_init = (1.0 - ts) * xa[None] + ts * xb[None]
    x_init = x_init + st.noise * jnp.linalg.norm(xb - xa) / np.sqrt(xa.shape[0]) * jax.random.normal(
        key, x_init.shape, x_init.dtype)
    x, e, top, it, fmax = _relax(problem, jnp.stack([xa, xb]), x_init, theta_a, jnp.asarray(st.spring, float),
                                 jnp.asarray(st.dt, float), jnp.asarray(st.dt_max, float),
                                 jnp.asarray(st.force_tol, float), jnp.int32(st.climb_after), jnp.int32(st.max_iter),
                                 balancing)
    x, e = np.asarray(x, float), np.asarray(e, float)
    top = int(top)
    saddle = certify_saddle(problem, unravel(jnp.asarray(x[top])), polish_tol=polish_tol, zero_tol=zero_tol,
                            global_loss_tol=global_loss_tol)
    images = {kk: np.stack([np.asarray(unravel(jnp.asarray(xi))[kk], float) for xi in x]) for kk in theta_a}
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(x, axis=0), axis=1))])
    return NEBResult(images=images, loss=e, s=s, top=top, n_iter=int(it), max_force=float(fmax),
                     converged=bool(float(fmax) <= st.force_tol), saddle=saddle,
                     barrier_from=saddle.loss - float(e[0]), barrier_to=saddle.loss - float(e[-1]),
                     band_barrier=float(e[1:-1].max() - max(e[0], e[-1])), settings=st)
