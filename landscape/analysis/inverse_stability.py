"""Inverse stability of the realization map of two-layer nets: parameter distance modulo symmetries against
realization distance, pathologies that break it, and the restricted set where it holds.

The realization map theta -> f_theta is inversely stable at theta if close realizations have close
parametrizations modulo the symmetries (Berner, Elbrächter & Grohs 2019; README, science section 5). For two nets
theta, theta' of the same architecture we measure

    ratio(theta, theta') = d_sym(theta, theta') / d_real(f_theta, f_theta')

- d_sym (:func:`parameter_distance`): balance every neuron (for p-homogeneous sigma, (u_j, a_j) -> (c u_j,
  a_j / c^p) with |c u_j| = |a_j / c^p|, u_j = (w_j, b_j); signs fixed for odd sigma), then match neurons by optimal
  assignment (``scipy.optimize.linear_sum_assignment``) and take the Euclidean distance of the matched rows
  (:func:`landscape.analysis.symmetry.canonical.distance_mod_symmetry`); ``balance=False`` matches raw rows.
- d_real (:func:`realization_distance`): the L2 distance E[(f - f')^2]^(1/2) for x ~ N(0, I_d), exact through the
  population kernels where they exist (relu, leaky relu, erf without biases: residual form of
  :mod:`landscape.problem.accurate_loss`, accurate down to tiny distances; smooth activations by quadrature),
  else on a Gaussian sample; and a Sobolev proxy (E[(f - f')^2] + E[|grad_x f - grad_x f'|^2])^(1/2), exact for
  relu without biases (E[1(u.x > 0) 1(v.x > 0)] = (pi - angle(u, v)) / (2 pi)), else on the sample.

Pathologies (:func:`pathology_pair`, one-parameter families whose ratio blows up; reconstructions of the paper's
examples, checked numerically in tests/test_inverse_stability.py):

- ``unbalanced``: {(t e1, 1/t), (t e2, 1/t)} against {(t w', 1/t), (t e2, 1/t)}, w' at angle 0.3 from e1: the
  realizations stay a fixed distance apart while the raw parameter distance grows like t (t -> inf); balancing
  removes this one (d_sym is constant).
- ``parallel``: {(e1, 1), (e1 + t e2, 1)} against {(e1, 2), (e1 + t e2, 0)}: nearly parallel neurons trade their
  output weight; d_real = O(t), d_sym = O(1) (t -> 0).
- ``opposite``: two opposite pairs relu(z) - relu(-z) = z along e1 and e2 (the linear map x1 + x2) against one
  pair along e1 + e2, its second neuron tilted by t e3, and two zero neurons: d_real = O(t), d_sym = O(1).
- ``dead``: {(e1, 0, 1), (e2, -t, 1)} against {(e1, 0, 1), (e3, -t, 1)} (biases): the second neuron is active
  with probability Phi(-t); d_real ~ exp(-t^2 / 4), d_sym >= |e2 - e3| (t -> inf).

The restricted set (:func:`restricted_set`; Berner et al.'s conditions, reconstructed): balanced neurons, no two
incoming vectors (nearly) parallel or opposite, every neuron active on a fraction of the inputs and not vanishing.

References:
    Berner, Elbrächter & Grohs, `How degenerate is the parametrization of neural networks with the ReLU activation
    function? <https://arxiv.org/abs/1905.09803>`_, NeurIPS 2019.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..problem.accurate_loss import population_loss_accurate
from ..problem.activations import ReLU
from ..problem.kernels import has_closed_form
from ..problem.networks import TwoLayer
from .symmetry.canonical import distance_mod_symmetry
from .symmetry.groups import neuron_matrix

__all__ = ["parameter_distance", "realization_distance", "RealizationDistance", "stability_ratio",
           "StabilityRatio", "PATHOLOGIES", "pathology_pair", "pathology_family", "well_separated_pair",
           "restricted_set", "RestrictedSet", "pairwise_ratios"]

PATHOLOGIES = ("unbalanced", "parallel", "opposite", "dead")
"""Names accepted by :func:`pathology_pair`."""


def _np_params(params) -> dict:
    return {k: np.asarray(v, float) for k, v in params.items()}


def parameter_distance(params1, params2, activation, *, balance: bool = True) -> float:
    """Distance of two two-layer parametrizations modulo neuron permutations (and rescalings with ``balance``).

        d = min_pi ( sum_j |n_j - n'_pi(j)|^2 )^(1/2),   n_j = (u_j, a_j), balanced when ``balance``

    (the narrower net is padded with zero neurons; for odd sigma each pair also tries n'_pi(j) -> -n'_pi(j)).

    Args:
        params1, params2: full parameter dicts {"w": (m, d), "b": (m,) optional, "a": (m,)}.
        activation: the activation (its ``homogeneity`` and ``odd`` facts decide the symmetries).
        balance: balance each neuron first (the distance modulo rescalings); False matches raw rows.

    Returns:
        The distance, a float.
    """
    p1, p2 = _np_params(params1), _np_params(params2)
    if balance:
        return distance_mod_symmetry(p1, p2, activation)[0]
    r1 = np.concatenate([neuron_matrix(p1), p1["a"][:, None]], axis=1)
    r2 = np.concatenate([neuron_matrix(p2), p2["a"][:, None]], axis=1)
    m = max(len(r1), len(r2))
    pad = lambda r: np.concatenate([r, np.zeros((m - len(r), r.shape[1]))])  # noqa: E731
    r1, r2 = pad(r1), pad(r2)
    cost = np.sum((r1[:, None] - r2[None]) ** 2, axis=-1)
    if activation.odd:
        cost = np.minimum(cost, np.sum((r1[:, None] + r2[None]) ** 2, axis=-1))
    from scipy.optimize import linear_sum_assignment  # lazy: importing scipy.optimize costs ~0.4 s
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].sum()))


@dataclass(frozen=True)
class RealizationDistance:
    """Distances between two realizations: ``l2`` = E[(f - f')^2]^(1/2), ``sobolev`` = (l2^2 +
    E|grad_x f - grad_x f'|^2)^(1/2); ``l2_method`` / ``sobolev_method`` say how each was computed ("exact",
    "quadrature" or "samples (n)")."""

    l2: float
    sobolev: float
    l2_method: str
    sobolev_method: str


def _relu_gradient_gram(U):
    """M_ij = E[1(u_i.x > 0) 1(u_j.x > 0)] u_i . u_j for x ~ N(0, I): (pi - angle) / (2 pi) times u_i . u_j."""
    n = np.linalg.norm(U, axis=1)
    ok = n > 0
    cos = (U @ U.T) / np.where(ok, n, 1.0)[:, None] / np.where(ok, n, 1.0)[None, :]
    angle = np.arccos(np.clip(cos, -1.0, 1.0))
    both = (np.pi - angle) / (2 * np.pi) * (ok[:, None] & ok[None, :])
    return both * (U @ U.T)


def _sample_inputs(d: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def _merged(net: TwoLayer, params1, params2):
    """One net computing f - f' (a stacked against -a'), identical neurons merged so nothing cancels."""
    p1, p2 = _np_params(params1), _np_params(params2)
    U = np.concatenate([neuron_matrix(p1), neuron_matrix(p2)])
    c = np.concatenate([p1["a"], -p2["a"]])
    keys, idx = np.unique(U, axis=0, return_inverse=True)
    coef = np.zeros(len(keys))
    np.add.at(coef, idx.reshape(-1), c)
    return keys, coef


@functools.partial(jax.jit, static_argnums=(0, 2))
def _l2_squared(net1: TwoLayer, params1, net2: TwoLayer, params2):
    """E[(f_1 - f_2)^2] for x ~ N(0, I_d): twice the population loss of net 1 against net 2 as its teacher, in the
    residual form (neurons of net 1 matched to rescaled neurons of net 2), accurate for tiny distances."""
    return 2.0 * population_loss_accurate(net1, params1, net2, params2)


def _merge_directions(U, beta, tol=1e-12):
    """Group rows of U that are positive multiples of one another (unit directions within ``tol``); returns the
    unit directions (zero rows dropped) and the summed coefficients beta_j |u_j|."""
    norms = np.linalg.norm(U, axis=1)
    dirs, coef = [], []
    for u, n, b in zip(U, norms, beta, strict=True):
        if n == 0:
            continue
        uh = u / n
        for k, v in enumerate(dirs):
            if np.linalg.norm(v - uh) <= tol:
                coef[k] += b * n
                break
        else:
            dirs.append(uh)
            coef.append(b * n)
    return np.asarray(dirs).reshape(-1, U.shape[1]), np.asarray(coef)


@functools.partial(jax.jit, static_argnums=0)
def _sample_values(net: TwoLayer, params, x):
    """(f(x_i), grad_x f(x_i)) over a sample x (n, d)."""
    return jax.vmap(lambda xi: net.apply(params, xi))(x), jax.vmap(jax.grad(lambda xi: net.apply(params, xi)))(x)


def realization_distance(net: TwoLayer, params1, params2, *, n_samples: int = 200_000,
                         seed: int = 0) -> RealizationDistance:
    """L2 and Sobolev-proxy distances of the realizations of two two-layer nets for x ~ N(0, I_d).

    L2: exact via the population kernels where they exist (closed forms without biases: residual form, so tiny
    distances are accurate; smooth activations: Gauss quadrature), else a Monte-Carlo mean over ``n_samples``
    Gaussian inputs drawn from ``seed`` (the same inputs for every call). Sobolev proxy: adds
    E|grad_x (f - f')|^2, exact for relu without biases, else on the same sample. Host-side (numpy results).

    Args:
        net: the common architecture (a :class:`landscape.TwoLayer` with ``input_dim``).
        params1, params2: full parameter dicts.
        n_samples, seed: the Gaussian sample used where no exact form exists.

    Returns:
        A :class:`RealizationDistance`.
    """
    act = net.activation
    d = int(np.asarray(params1["w"]).shape[1])
    x = None

    def sample():
        nonlocal x
        if x is None:
            x = _sample_inputs(d, n_samples, seed)
        return x

    U, c = _merged(net, params1, params2)
    diff_net = TwoLayer(len(c), act, net.bias, d)
    diff = {"w": jnp.asarray(U[:, :d]), "a": jnp.asarray(c)}
    if net.bias:
        diff["b"] = jnp.asarray(U[:, d])
    if has_closed_form(act, net.bias) or act.smooth:
        q1, q2 = ({k: jnp.asarray(v, float) for k, v in p.items()} for p in (params1, params2))
        sq = float(_l2_squared(TwoLayer(len(q1["a"]), act, net.bias, d), q1, TwoLayer(len(q2["a"]), act, net.bias, d),
                               q2))
        l2_method = "exact" if has_closed_form(act, net.bias) else "quadrature"
    else:
        f = np.asarray(_sample_values(diff_net, diff, jnp.asarray(sample()))[0])
        sq, l2_method = float(np.mean(f**2)), f"samples ({n_samples})"
    sq = max(sq, 0.0)
    if isinstance(act, ReLU) and not net.bias:
        dirs, beta = _merge_directions(U, c)  # grad f = sum_j beta_j 1(u_j . x > 0) u_j over unit directions u_j
        gsq = float(beta @ _relu_gradient_gram(dirs) @ beta)
        sob_method = "exact"
    else:
        g = np.asarray(_sample_values(diff_net, diff, jnp.asarray(sample()))[1])
        gsq, sob_method = float(np.mean(np.sum(g**2, axis=1))), f"samples ({n_samples})"
    return RealizationDistance(l2=math.sqrt(sq), sobolev=math.sqrt(sq + max(gsq, 0.0)), l2_method=l2_method,
                               sobolev_method=sob_method)


@dataclass(frozen=True)
class StabilityRatio:
    """d_sym / d_real for one pair: ``d_sym`` (balanced, matched), ``d_raw`` (matched only), the
    :class:`RealizationDistance` ``real``, and the ratios ``ratio_l2`` = d_sym / l2, ``ratio_sobolev`` =
    d_sym / sobolev, ``ratio_raw`` = d_raw / l2 (inf where the realizations coincide)."""

    d_sym: float
    d_raw: float
    real: RealizationDistance
    ratio_l2: float
    ratio_sobolev: float
    ratio_raw: float


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (math.inf if a > 0 else math.nan)


def stability_ratio(net: TwoLayer, params1, params2, **kwargs) -> StabilityRatio:
    """The inverse-stability ratios of one pair of parametrizations; see the module docstring.

    Example:
        >>> import landscape as ls
        >>> from landscape.analysis.inverse_stability import pathology_pair, stability_ratio
        >>> net, p1, p2 = pathology_pair("parallel", 1e-3)
        >>> r = stability_ratio(net, p1, p2)
        >>> r.real.l2_method, r.ratio_l2 > 100
        ('exact', True)
    """
    real = realization_distance(net, params1, params2, **kwargs)
    d_sym = parameter_distance(params1, params2, net.activation)
    d_raw = parameter_distance(params1, params2, net.activation, balance=False)
    return StabilityRatio(d_sym=d_sym, d_raw=d_raw, real=real, ratio_l2=_ratio(d_sym, real.l2),
                          ratio_sobolev=_ratio(d_sym, real.sobolev), ratio_raw=_ratio(d_raw, real.l2))


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def pathology_pair(kind: str, t: float, *, d: int = 3) -> tuple[TwoLayer, dict, dict]:
    """``(net, params1, params2)``: the pair of the pathology family ``kind`` at parameter ``t``.

    See the module docstring for each family; ``unbalanced`` and ``dead`` blow up as t -> inf, ``parallel`` and
    ``opposite`` as t -> 0. ReLU two-layer nets on R^d (d >= 3), biases only for ``dead``.

    Raises:
        ValueError: for an unknown ``kind`` or d < 3.
    """
    if kind not in PATHOLOGIES:
        raise ValueError(f"unknown pathology {kind!r}; use one of: {', '.join(PATHOLOGIES)}")
    if d < 3:
        raise ValueError(f"pathology families need d >= 3, got d = {d}")
    e = np.eye(d)
    t = float(t)
    if kind == "unbalanced":
        w2 = math.cos(0.3) * e[0] + math.sin(0.3) * e[2]
        p1 = {"w": t * np.stack([e[0], e[1]]), "a": np.full(2, 1.0 / t)}
        p2 = {"w": t * np.stack([w2, e[1]]), "a": np.full(2, 1.0 / t)}
        return TwoLayer(2, ReLU(), False, d), p1, p2
    if kind == "parallel":
        u = e[0] + t * e[1]
        p1 = {"w": np.stack([e[0], u]), "a": np.array([1.0, 1.0])}
        p2 = {"w": np.stack([e[0], u]), "a": np.array([2.0, 0.0])}
        return TwoLayer(2, ReLU(), False, d), p1, p2
    if kind == "opposite":
        p1 = {"w": np.stack([e[0], -e[0], e[1], -e[1]]), "a": np.array([1.0, -1.0, 1.0, -1.0])}
        s = 2.0**0.25  # balanced pair a w = e1 + e2 with |w| = |a|
        w = (e[0] + e[1]) / s
        p2 = {"w": np.stack([w, -w + t * e[2], np.zeros(d), np.zeros(d)]), "a": np.array([s, -s, 0.0, 0.0])}
        return TwoLayer(4, ReLU(), False, d), p1, p2
    p1 = {"w": np.stack([e[0], e[1]]), "b": np.array([0.0, -t]), "a": np.array([1.0, 1.0])}
    p2 = {"w": np.stack([e[0], e[2]]), "b": np.array([0.0, -t]), "a": np.array([1.0, 1.0])}
    return TwoLayer(2, ReLU(), True, d), p1, p2


def well_separated_pair(t: float, *, d: int = 3, width: int = 3, seed: int = 0) -> tuple[TwoLayer, dict, dict]:
    """A balanced, well-separated ReLU net (orthonormal incoming vectors, |w_j| = |a_j| = 1) and its copy moved by
    ``t`` along a fixed random unit direction of all parameters: inside the restricted set, where the ratio stays
    bounded as t -> 0."""
    if width > d:
        raise ValueError(f"width = {width} orthonormal neurons need d >= width, got d = {d}")
    rng = np.random.default_rng(seed)
    p1 = {"w": np.eye(d)[:width], "a": np.ones(width)}
    dw, da = rng.standard_normal((width, d)), rng.standard_normal(width)
    norm = math.sqrt(np.sum(dw**2) + np.sum(da**2))
    p2 = {"w": p1["w"] + t * dw / norm, "a": p1["a"] + t * da / norm}
    return TwoLayer(width, ReLU(), False, d), p1, p2


def pathology_family(kind: str, ts, **kwargs) -> dict[str, np.ndarray]:
    """Ratios along a family: arrays ``t``, ``d_sym``, ``d_raw``, ``l2``, ``sobolev``, ``ratio_l2``,
    ``ratio_sobolev``, ``ratio_raw`` (one entry per t); ``kind`` is a pathology or ``"well_separated"``."""
    rows = []
    for t in ts:
        net, p1, p2 = well_separated_pair(t) if kind == "well_separated" else pathology_pair(kind, t)
        r = stability_ratio(net, p1, p2, **kwargs)
        rows.append((t, r.d_sym, r.d_raw, r.real.l2, r.real.sobolev, r.ratio_l2, r.ratio_sobolev, r.ratio_raw))
    names = ("t", "d_sym", "d_raw", "l2", "sobolev", "ratio_l2", "ratio_sobolev", "ratio_raw")
    return {k: np.asarray(v, float) for k, v in zip(names, zip(*rows, strict=True), strict=True)}


@dataclass(frozen=True)
class RestrictedSet:
    """Whether a two-layer parametrization lies in the restricted set, criterion by criterion.

    Attributes:
        in_set: every criterion holds.
        max_imbalance: max_j | |u_j| - |a_j| | / max(|u_j|, |a_j|), u_j = (w_j, b_j) (0 when every neuron is
            balanced, the canonical representative of its rescaling orbit; 0 for non-homogeneous sigma).
        min_angle: smallest angle (radians) between two incoming vectors u_j, u_k or between u_j and -u_k
            (parallel or opposite neurons).
        min_active: smallest probability P(u_j . (x, 1) > 0) for x ~ N(0, I_d) (1/2 without biases).
        min_size: smallest |u_j| |a_j| (a vanishing neuron).
        flags: the names of the failed criteria ("unbalanced", "parallel", "opposite", "dead", "vanishing").
    """

    in_set: bool
    max_imbalance: float
    min_angle: float
    min_active: float
    min_size: float
    flags: tuple[str, ...]


def restricted_set(params, activation, *, balance_tol: float = 1e-6, min_angle: float = 0.1,
                   min_active: float = 1e-3, min_size: float = 1e-6) -> RestrictedSet:
    """Check the restricted set of Berner et al. (reconstructed): balanced neurons, pairwise angles between
    incoming vectors (and their negatives) at least ``min_angle``, activity probability at least ``min_active``,
    neuron size |u_j| |a_j| at least ``min_size``; Gaussian inputs x ~ N(0, I_d). Host-side.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> ls.restricted_set({"w": jnp.eye(2), "a": jnp.ones(2)}, ls.ReLU()).in_set
        True
        >>> ls.restricted_set({"w": jnp.array([[1.0, 0.0], [2.0, 0.0]]), "a": jnp.array([1.0, 0.5])}, ls.ReLU()).flags
        ('unbalanced', 'parallel')
    """
    p = _np_params(params)
    U, a = neuron_matrix(p), p["a"]
    nu, na = np.linalg.norm(U, axis=1), np.abs(a)
    # the rescaling (c u, a / c^p) of a p-homogeneous sigma is balanced, |c u| = |a / c^p|, at c^(p+1) = |a| / |u|
    scale = np.maximum(np.maximum(nu, na), 1e-300)
    imbalance = float(np.max(np.abs(nu - na) / scale)) if activation.homogeneity is not None else 0.0
    flags = []
    if imbalance > balance_tol:
        flags.append("unbalanced")
    ok = nu > 0
    Un = U[ok] / nu[ok, None]
    cos = Un @ Un.T
    iu = np.triu_indices(len(Un), 1)
    angles_par = np.arccos(np.clip(cos[iu], -1.0, 1.0))
    angles_opp = np.pi - angles_par
    min_par = float(np.min(angles_par)) if len(angles_par) else math.pi
    min_opp = float(np.min(angles_opp)) if len(angles_opp) else math.pi
    if min_par < min_angle:
        flags.append("parallel")
    if min_opp < min_angle:
        flags.append("opposite")
    if "b" in p:
        w_norm = np.linalg.norm(p["w"], axis=1)
        from scipy.special import ndtr  # lazy, as above

        active = np.where(w_norm > 0, ndtr(p["b"] / np.where(w_norm > 0, w_norm, 1.0)), (p["b"] > 0).astype(float))
    else:
        active = np.where(nu > 0, 0.5, 0.0)
    if float(np.min(active)) < min_active:
        flags.append("dead")
    size = nu * na
    if float(np.min(size)) < min_size:
        flags.append("vanishing")
    return RestrictedSet(in_set=not flags, max_imbalance=imbalance, min_angle=min(min_par, min_opp),
                         min_active=float(np.min(active)), min_size=float(np.min(size)), flags=tuple(flags))


def pairwise_ratios(problem, thetas, *, select=None, **kwargs) -> dict[str, np.ndarray]:
    """Inverse-stability ratios over all pairs (i < j) of a batch of points of a two-layer problem.

    Args:
        problem: a :class:`landscape.TeacherStudent` with a two-layer student (frozen output weights merged in).
        thetas: trainable parameter dicts with a leading axis n (e.g. ``Exploration.theta``).
        select: optional (n,) booleans, e.g. the certified minima; only those points are paired.
        **kwargs: passed to :func:`realization_distance`.

    Returns:
        Arrays over pairs: ``i``, ``j``, ``d_sym``, ``l2``, ``sobolev``, ``ratio_l2``, ``ratio_sobolev``.
    """
    net = problem.student
    if not isinstance(net, TwoLayer):
        raise ValueError("pairwise_ratios needs a two-layer student (the realization kernels are two-layer)")
    n = int(jax.tree.leaves(thetas)[0].shape[0])
    idx = np.arange(n) if select is None else np.flatnonzero(np.asarray(select))
    full = [problem.full_params(jax.tree.map(lambda v, k=k: v[k], thetas)) for k in idx]
    out = {k: [] for k in ("i", "j", "d_sym", "l2", "sobolev", "ratio_l2", "ratio_sobolev")}
    for s, i in enumerate(idx):
        for r, j in enumerate(idx[s + 1:], start=s + 1):
            res = stability_ratio(net, full[s], full[r], **kwargs)
            for k, v in (("i", i), ("j", j), ("d_sym", res.d_sym), ("l2", res.real.l2),
                         ("sobolev", res.real.sobolev), ("ratio_l2", res.ratio_l2),
                         ("ratio_sobolev", res.ratio_sobolev)):
                out[k].append(v)
    return {k: np.asarray(v, int if k in ("i", "j") else float) for k, v in out.items()}
