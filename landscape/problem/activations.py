"""Activation functions as strategy objects: each carries its function, its symmetry facts and its pair kernel.

An activation is a frozen, hashable dataclass (so it can be a static field of a jitted problem) deriving from
:class:`AbstractActivation`. Every concrete class is final and holds everything about one activation, so adding
an activation touches this file only:

- ``__call__(z)``: sigma applied elementwise;
- the symmetry facts the analysis needs (README, science section 1 and "Numerics"):

  - ``homogeneity``: degree p of positive homogeneity, sigma(c z) = c^p sigma(z) for c > 0 (relu: 1, relu^p: p),
    or ``None``. Positively homogeneous activations have the rescaling symmetry (w, b, a) -> (c w, c b, a / c^p);
  - ``odd``: sigma(-z) = -sigma(z) (tanh, erf): sign flips (w, b, a) -> (-w, -b, -a) are symmetries;
  - ``zero_at_zero``: sigma(0) = 0, so a neuron with w = 0 and b = 0 contributes nothing;
  - ``smooth``: C-infinity, so Price's theorem and second-order splitting analysis (sigma'') apply;

- ``pair_kernel(w, v)``: the closed form of k(w, v) = E_x[sigma(w . x) sigma(v . x)], x ~ N(0, I_d), without
  biases, or ``None`` from :meth:`AbstractActivation.pair_kernel` when there is none (the population loss then
  uses 2-D Gaussian quadrature, :mod:`landscape.problem.kernels`, which needs a smooth activation);
- ``quadrature_order``: nodes per dimension that quadrature uses by default.

Example:
    >>> import landscape as ls
    >>> act = ls.LeakyReLU(0.1)
    >>> act.homogeneity, act.odd, act.label
    (1.0, False, 'leaky_relu(0.1)')

Strings such as ``"leaky_relu(0.1)"`` are parsed into these objects in :mod:`landscape.config` only.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp

from .kernel_math import arccos_tail, g_small_angle, gaussian_moment, half_linear, safe_sqrt

__all__ = [
    "AbstractActivation",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ReLUPower",
    "Softplus",
    "Tanh",
    "Erf",
    "Sigmoid",
    "Sigmoid4Softplus",
    "ACTIVATIONS",
    "relu_kernel",
    "relu_kernel_slopes",
    "leaky_relu_kernel_slopes",
    "relu_power_kernel",
    "leaky_relu_kernel",
    "erf_kernel",
]

DEFAULT_ORDER = 128
"""Quadrature nodes per dimension: error <= 3e-11 for |w|, |v| <= 3 for the smooth activations (tests/test_kernels)."""


class AbstractActivation(abc.ABC):
    """A scalar activation sigma with its symmetry facts and (optionally) its closed-form Gaussian pair kernel.

    Subclasses are frozen dataclasses and final. Class attributes state the facts; ``label`` is the name as a
    config writes it. An activation is hashable and used as a static field: a new activation is a new compilation.

    Example:
        >>> from dataclasses import dataclass
        >>> import jax.numpy as jnp, landscape as ls
        >>> @dataclass(frozen=True)
        ... class Cube(ls.AbstractActivation):  # sigma(z) = z^3: odd, 3-homogeneous, smooth
        ...     name = "cube"
        ...     homogeneity = 3.0
        ...     odd = zero_at_zero = smooth = True
        ...     def __call__(self, z):
        ...         return z**3
        >>> Cube()(jnp.array([-1.0, 2.0])).tolist(), Cube().has_closed_form
        ([-1.0, 8.0], False)

    References:
        Şimşek et al., `Geometry of the Loss Landscape in Overparameterized Neural Networks: Symmetries and
        Invariances <https://arxiv.org/abs/2105.12221>`_, ICML 2021.
    """

    name: ClassVar[str]
    homogeneity: ClassVar[float | None] = None
    odd: ClassVar[bool] = False
    zero_at_zero: ClassVar[bool] = False
    smooth: ClassVar[bool] = False
    quadrature_order: ClassVar[int] = DEFAULT_ORDER

    @abc.abstractmethod
    def __call__(self, z):
        """sigma(z), elementwise."""

    @property
    def label(self) -> str:
        """The name as written in configs (``relu``, ``leaky_relu(0.1)``, ``relu^2``)."""
        return self.name

    def pair_kernel(self, w, v):
        """Closed form of E[sigma(w . x) sigma(v . x)], x ~ N(0, I_d), for w, v of shape (d,); None if none exists."""
        return None

    def pair_kernel_slopes(self, w, v):
        """(k, A, B) with k = :meth:`pair_kernel` and d k(w, v)/d w = A w/|w| + B v, or None when the activation
        has no such closed form (then the population loss is differentiated by autodiff)."""
        return None

    @property
    def has_closed_form_slopes(self) -> bool:
        """Whether :meth:`pair_kernel_slopes` gives the kernel's gradient in closed form (relu, leaky relu)."""
        return type(self).pair_kernel_slopes is not AbstractActivation.pair_kernel_slopes

    @property
    def has_closed_form(self) -> bool:
        """Whether :meth:`pair_kernel` gives a closed form (without biases)."""
        return type(self).pair_kernel is not AbstractActivation.pair_kernel

    def facts(self) -> dict:
        """The symmetry facts as a plain dict (for summaries and reports)."""
        return {"activation": self.label, "homogeneity": self.homogeneity, "odd": self.odd,
                "zero_at_zero": self.zero_at_zero, "smooth": self.smooth}


Activation = AbstractActivation
"""Alias used in type hints across the package."""


def relu_kernel(w, v):
    """E[relu(w.x) relu(v.x)] for x ~ N(0, I): the arc-cosine kernel of degree 1 (Cho & Saul 2009).

        k(w, v) = |w||v| / (2 pi) g(pi - theta) = w . v / 2 + |w||v| / (2 pi) g(theta),  g(t) = sin t - t cos t.

    Evaluated in the form whose g argument t is <= pi/2 (t = theta if acute, pi - theta if obtuse). From the unit
    vectors u, z: d- = |u - z| = 2 sin(theta/2) and d+ = |u + z| = 2 cos(theta/2), each summed over coordinates so
    that it is accurate at tiny angles; with lo = min(d-, d+), hi = max(d-, d+) (hi >= sqrt 2):

        t = 2 atan(lo / hi),   sin t = lo hi / 2,   cos t = (hi^2 - lo^2) / 4,

    so one arctangent and no sine or cosine per pair (the flow's hot path; 1.6x faster than two arctangents plus sin
    and cos; atan of the ratio, which is at most 1, costs less than half of XLA's atan2 on a CPU). Below t = 0.1 the
    series of g (:func:`~landscape.problem.kernel_math.g_small_angle`) replaces the cancelling closed form. Square
    roots are guarded, so values and derivatives are the limits at parallel, antiparallel and coincident neurons;
    k(0, v) and all its derivatives are 0 (relu'(0) = 0).
    """
    ok, acute, nw, nv, t, sin_t, cos_t = _relu_angle(w, v)
    g = g_small_angle(t, sin_t=sin_t, cos_t=cos_t)
    n = nw * nv / (2.0 * math.pi)
    return jnp.where(ok, jnp.where(acute, 0.5 * (w @ v), 0.0) + n * g, 0.0)


def _relu_angle(w, v):
    """The geometry :func:`relu_kernel` and :func:`relu_kernel_slopes` share, for w, v of shape (d,).

    Returns (ok, acute, |w|, |v|, t, sin t, cos t): ok = both nonzero; t in [0, pi/2] is theta if acute, else
    pi - theta, from one arctangent of the chord lengths (see :func:`relu_kernel`).
    """
    nw2, nv2 = w @ w, v @ v
    ok = (nw2 > 0) & (nv2 > 0)
    nw, nv = safe_sqrt(nw2), safe_sqrt(nv2)
    u = w / jnp.where(ok, nw, 1.0)
    z = v / jnp.where(ok, nv, 1.0)
    dm2 = jnp.sum((u - z) ** 2)  # |u - z|^2 = 4 sin^2(theta/2)
    dp2 = jnp.sum((u + z) ** 2)  # |u + z|^2 = 4 cos^2(theta/2)
    acute = dm2 <= dp2
    lo2, hi2 = jnp.where(acute, dm2, dp2), jnp.where(acute, dp2, dm2)
    lo, hi = safe_sqrt(lo2), safe_sqrt(hi2)
    t = 2.0 * jnp.arctan(lo / jnp.where(hi > 0, hi, 1.0))  # lo <= hi: atan(lo/hi) = atan2(lo, hi), in [0, pi/2]
    return ok, acute, nw, nv, t, 0.5 * lo * hi, 0.25 * (hi2 - lo2)


def relu_kernel_slopes(w, v):
    """k(w, v) of :func:`relu_kernel` and the two coefficients of its gradient in w (Brutzkus & Globerson 2017):

        d k(w, v) / d w = A w/|w| + B v,   A = |v| sin(theta) / (2 pi),   B = (pi - theta) / (2 pi).

    Returns (k, A, B), scalars; A = B = 0 at a zero neuron (w = 0 or v = 0), the convention relu'(0) = 0 that
    autodiff of :func:`relu_kernel` follows. The same angle as :func:`relu_kernel` (sin theta = sin t, and
    pi - theta = pi - t if acute, t if obtuse), so A and B are accurate at parallel, antiparallel and coincident
    neurons; no cancellation (both terms are non-negative multiples of w/|w| and v). The population loss's
    closed-form gradient (:func:`landscape.problem.population.population_value_and_grad`) is built from these.

    References:
        Brutzkus & Globerson, `Globally Optimal Gradient Descent for a ConvNet with Gaussian Inputs
        <https://arxiv.org/abs/1702.07966>`_, ICML 2017 (the gradient of the arc-cosine kernel).
    """
    ok, acute, nw, nv, t, sin_t, cos_t = _relu_angle(w, v)
    g = g_small_angle(t, sin_t=sin_t, cos_t=cos_t)
    k = jnp.where(ok, jnp.where(acute, 0.5 * (w @ v), 0.0) + nw * nv / (2.0 * math.pi) * g, 0.0)
    a = jnp.where(ok, nv * sin_t / (2.0 * math.pi), 0.0)
    b = jnp.where(ok, jnp.where(acute, math.pi - t, t) / (2.0 * math.pi), 0.0)
    return k, a, b


def relu_power_kernel(w, v, p: int):
    """E[relu(w.x)^p relu(v.x)^p] for x ~ N(0, I): the arc-cosine kernel of order p = 1, 2, 3 (Cho & Saul 2009).

        k_p(w, v) = |w|^p |v|^p J_p(theta) / (2 pi),   theta = angle(w, v),
        J_1 = sin t + (pi - t) cos t,  J_2 = 3 sin t cos t + (pi - t)(1 + 2 cos^2 t),
        J_3 = 15 sin t - 11 sin^3 t + (pi - t)(9 cos t + 6 cos^3 t).

    Since relu(z)^p + (-1)^p relu(-z)^p = z^p, k_p(w, v) = M_p / 2 - (-1)^p k_p(w, -v) with the polynomial
    M_p = E[(w.x)^p (v.x)^p] (:func:`~landscape.problem.kernel_math.gaussian_moment`), and J_p(pi - t) = h_p(t) is
    O(t^(2p+1)) (:func:`~landscape.problem.kernel_math.arccos_tail`). So, like :func:`relu_kernel`:

        acute  (theta <= pi/2):  k_p = M_p / 2 - (-1)^p |w|^p |v|^p h_p(theta) / (2 pi),
        obtuse (theta > pi/2):   k_p = |w|^p |v|^p h_p(pi - theta) / (2 pi),

    with the angle from 2 atan2(|u - z|, |u + z|) of unit vectors and the series of h_p at small angles: values,
    gradients and Hessians are the limits at parallel and antiparallel neurons (k_p is C^(2p) there). At a zero
    neuron k_p(0, v) and all its derivatives are 0, the autodiff convention relu'(0) = 0 (for p >= 3 these are the
    true derivatives; for p = 2 the Hessian at w = 0 depends on the direction of approach and 0 is the value that
    the finite-sample autodiff loss gives).

    Args:
        w, v: (d,) incoming vectors.
        p: the order, 1, 2 or 3 (static).

    Returns:
        The scalar k_p(w, v).
    """
    nw2, nv2 = w @ w, v @ v
    ok = (nw2 > 0) & (nv2 > 0)
    nw, nv = safe_sqrt(nw2), safe_sqrt(nv2)
    e = jnp.zeros_like(w).at[0].set(1.0)  # any unit vector: keeps theta = 0 and its derivatives finite when not ok
    u = jnp.where(ok, w / jnp.where(ok, nw, 1.0), e)
    z = jnp.where(ok, v / jnp.where(ok, nv, 1.0), e)
    dm2 = jnp.sum((u - z) ** 2)  # 4 sin^2(theta/2)
    dp2 = jnp.sum((u + z) ** 2)  # 4 cos^2(theta/2)
    dm, dp = safe_sqrt(dm2), safe_sqrt(dp2)
    acute = dm2 <= dp2
    theta = 2.0 * jnp.arctan2(dm, jnp.where(acute, dp, 1.0))
    phi = 2.0 * jnp.arctan2(dp, jnp.where(acute, 1.0, dm))
    scale = (nw2 * nv2) ** (p // 2) * (nw * nv) ** (p % 2) / (2.0 * math.pi)  # |w|^p |v|^p / (2 pi)
    k_acute = 0.5 * gaussian_moment(p, nw2, nv2, w @ v) - (-1.0) ** p * scale * arccos_tail(
        jnp.where(acute, theta, 0.0), p)
    k_obtuse = scale * arccos_tail(jnp.where(acute, 0.0, phi), p)
    return jnp.where(ok, jnp.where(acute, k_acute, k_obtuse), 0.0)


def leaky_relu_kernel(w, v, alpha):
    """E[leaky(w.x) leaky(v.x)] for leaky(z) = alpha z + (1 - alpha) relu(z); see :class:`LeakyReLU`."""
    cross = half_linear(w, v) + half_linear(v, w)
    return alpha * alpha * (w @ v) + alpha * (1.0 - alpha) * cross + (1.0 - alpha) ** 2 * relu_kernel(w, v)


def leaky_relu_kernel_slopes(w, v, alpha):
    """:func:`leaky_relu_kernel` and its gradient in w as A w/|w| + B v (see :func:`relu_kernel_slopes`):

        A = (1 - alpha)^2 A_relu,   B = alpha^2 + alpha (1 - alpha) ([w != 0] + [v != 0]) / 2 + (1 - alpha)^2 B_relu,

    from d/dw of the half-linear terms (w.v / 2 when the relu-side vector is nonzero, the relu'(0) = 0 convention).
    """
    k, a, b = relu_kernel_slopes(w, v)
    nz = lambda x: (x @ x > 0).astype(w.dtype)  # noqa: E731
    cross = half_linear(w, v) + half_linear(v, w)
    value = alpha * alpha * (w @ v) + alpha * (1.0 - alpha) * cross + (1.0 - alpha) ** 2 * k
    slope_v = alpha * alpha + 0.5 * alpha * (1.0 - alpha) * (nz(w) + nz(v)) + (1.0 - alpha) ** 2 * b
    return value, (1.0 - alpha) ** 2 * a, slope_v


def erf_kernel(w, v):
    """E[erf(w.x) erf(v.x)] = (2/pi) arcsin(2 w.v / sqrt((1 + 2|w|^2)(1 + 2|v|^2))) (Williams 1997)."""
    return (2.0 / math.pi) * jnp.arcsin(2.0 * (w @ v) / jnp.sqrt((1.0 + 2.0 * (w @ w)) * (1.0 + 2.0 * (v @ v))))


@final
@dataclass(frozen=True)
class ReLU(AbstractActivation):
    """sigma(z) = max(z, 0); 1-homogeneous; closed-form arc-cosine kernel (:func:`relu_kernel`).

        k(w, v) = |w||v| / (2 pi) (sin theta + (pi - theta) cos theta),   theta = angle(w, v)

    Symmetries: positive rescaling (w, a) -> (c w, a / c) and dead or zero neurons (relu(0) = 0).

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> e1, e2 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
        >>> float(ls.ReLU().pair_kernel(e1, e1)), round(float(ls.ReLU().pair_kernel(e1, e2)), 6)  # 1/2, 1/(2 pi)
        (0.5, 0.159155)

    References:
        Cho & Saul, Kernel Methods for Deep Learning, NeurIPS 2009.

        Safran & Shamir, `Spurious Local Minima are Common in Two-Layer ReLU Neural Networks
        <https://arxiv.org/abs/1712.08968>`_, ICML 2018.
    """

    name: ClassVar[str] = "relu"
    homogeneity: ClassVar[float | None] = 1.0
    zero_at_zero: ClassVar[bool] = True

    def __call__(self, z):
        return jax.nn.relu(z)

    def pair_kernel(self, w, v):
        return relu_kernel(w, v)

    def pair_kernel_slopes(self, w, v):
        return relu_kernel_slopes(w, v)


@final
@dataclass(frozen=True)
class LeakyReLU(AbstractActivation):
    """sigma(z) = z for z > 0, alpha z otherwise (0 <= alpha < 1); 1-homogeneous.

    Kernel: leaky(z) = alpha z + (1 - alpha) relu(z) and E[u relu(v)] = E[u v] / 2 give
        k(w, v) = alpha^2 w.v + alpha (1 - alpha) (E[relu(w.x) v.x] + E[w.x relu(v.x)]) + (1 - alpha)^2 k_relu,
    written so that derivatives at a zero neuron follow relu'(0) = 0 (leaky'(0) = alpha), like autodiff.

    Args:
        alpha: the negative slope, 0 <= alpha < 1 (default 0.01).

    Raises:
        ValueError: if alpha is outside [0, 1).

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> act = ls.LeakyReLU(0.1)
        >>> act(jnp.array([-1.0, 2.0])).tolist(), act.label
        ([-0.1, 2.0], 'leaky_relu(0.1)')
        >>> float(act.pair_kernel(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])))  # (1 + alpha^2) / 2
        0.505
    """

    alpha: float = 0.01
    name: ClassVar[str] = "leaky_relu"
    homogeneity: ClassVar[float | None] = 1.0
    zero_at_zero: ClassVar[bool] = True

    def __post_init__(self):
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"leaky_relu slope must be in [0, 1), got {self.alpha}")

    def __call__(self, z):
        return jnp.where(z > 0, z, self.alpha * z)

    @property
    def label(self) -> str:
        return f"leaky_relu({self.alpha:g})"

    @property
    def param(self) -> float:
        return self.alpha

    def pair_kernel(self, w, v):
        return leaky_relu_kernel(w, v, self.alpha)

    def pair_kernel_slopes(self, w, v):
        return leaky_relu_kernel_slopes(w, v, self.alpha)


@final
@dataclass(frozen=True)
class ReLUPower(AbstractActivation):
    """sigma(z) = max(z, 0)^p for an integer p >= 2 (polynomial ReLU); p-homogeneous, C^(p-1).

    A two-layer net without biases is then positively homogeneous of order L = p + 1 in all its weights, and
    gradient flow from a small initialisation first converges in direction (Kumar & Haupt 2024). Closed-form
    kernel for p = 2 and 3 (:func:`relu_power_kernel`, the arc-cosine kernel of order p, Cho & Saul 2009):

        k(w, v) = |w|^p |v|^p J_p(theta) / (2 pi),
        J_2 = 3 sin t cos t + (pi - t)(1 + 2 cos^2 t),  J_3 = 15 sin t - 11 sin^3 t + (pi - t)(9 cos t + 6 cos^3 t),

    so :class:`landscape.PopulationLoss` is exact for relu^2 and relu^3 students and teachers without biases
    (C^1 or better in the weights); larger p (no kernel here) and biases need :class:`landscape.SampleLoss`.

    Args:
        p: the integer power, p >= 2.

    Raises:
        ValueError: if p is not an integer >= 2 (use :class:`ReLU` for p = 1).

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> act = ls.ReLUPower(3)
        >>> act(jnp.array([-1.0, 2.0])).tolist(), act.homogeneity, act.label
        ([0.0, 8.0], 3.0, 'relu^3')
        >>> e1 = jnp.array([1.0, 0.0])
        >>> float(act.pair_kernel(e1, e1))  # E[relu(z)^6] = 15 / 2
        7.5

    References:
        Cho & Saul, Kernel Methods for Deep Learning, NeurIPS 2009.

        Kumar & Haupt, `Early Directional Convergence in Deep Homogeneous Neural Networks for Small
        Initializations <https://arxiv.org/abs/2403.08121>`_, 2024.
    """

    p: int = 2

    name: ClassVar[str] = "relu_p"
    zero_at_zero: ClassVar[bool] = True

    def __post_init__(self):
        if not isinstance(self.p, int) or self.p < 2:
            raise ValueError(f"relu^p needs an integer p >= 2 (use ReLU() for p = 1), got {self.p!r}")

    def __call__(self, z):
        return jax.nn.relu(z) ** self.p

    @property
    def homogeneity(self) -> float:  # type: ignore[override]
        return float(self.p)

    @property
    def param(self) -> float:
        return float(self.p)

    @property
    def label(self) -> str:
        return f"relu^{self.p}"

    @property
    def has_closed_form(self) -> bool:
        return self.p <= 3

    def pair_kernel(self, w, v):
        if self.p > 3:
            return None
        return relu_power_kernel(w, v, self.p)


@final
@dataclass(frozen=True)
class Softplus(AbstractActivation):
    """sigma(z) = log(1 + e^z); smooth, no symmetry of its own.

    The population loss uses 2-D Gaussian quadrature with Price's-theorem derivatives (Price 1958).

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> round(float(ls.Softplus()(jnp.array(0.0))), 6), ls.Softplus().smooth  # log 2
        (0.693147, True)
    """

    name: ClassVar[str] = "softplus"
    smooth: ClassVar[bool] = True

    def __call__(self, z):
        return jax.nn.softplus(z)


@final
@dataclass(frozen=True)
class Tanh(AbstractActivation):
    """sigma(z) = tanh z; smooth and odd.

    Odd: the sign flip (w, b, a) -> (-w, -b, -a) of a neuron is a symmetry. Population loss by quadrature.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> ls.Tanh()(jnp.array([-1.0, 0.0, 1.0])).round(6).tolist(), ls.Tanh().odd
        ([-0.761594, 0.0, 0.761594], True)
    """

    name: ClassVar[str] = "tanh"
    odd: ClassVar[bool] = True
    zero_at_zero: ClassVar[bool] = True
    smooth: ClassVar[bool] = True

    def __call__(self, z):
        return jnp.tanh(z)


@final
@dataclass(frozen=True)
class Erf(AbstractActivation):
    """sigma(z) = erf z; smooth and odd. Kernel (Williams 1997):

        k(w, v) = (2 / pi) arcsin(2 w.v / sqrt((1 + 2|w|^2)(1 + 2|v|^2))),  smooth everywhere.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> e1 = jnp.array([1.0, 0.0])
        >>> round(float(ls.Erf().pair_kernel(e1, e1)), 6)  # (2 / pi) arcsin(2/3)
        0.464559

    References:
        Williams, Computing with Infinite Networks, NeurIPS 1997.
    """

    name: ClassVar[str] = "erf"
    odd: ClassVar[bool] = True
    zero_at_zero: ClassVar[bool] = True
    smooth: ClassVar[bool] = True

    def __call__(self, z):
        return jax.scipy.special.erf(z)

    def pair_kernel(self, w, v):
        return erf_kernel(w, v)


@final
@dataclass(frozen=True)
class Sigmoid(AbstractActivation):
    """sigma(z) = 1 / (1 + e^-z); smooth.

    Population loss by quadrature. sigma(-z) = 1 - sigma(z): a sign flip shifts f by a constant, so it is no symmetry.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> float(ls.Sigmoid()(jnp.array(0.0))), ls.Sigmoid().facts()["odd"]
        (0.5, False)
    """

    name: ClassVar[str] = "sigmoid"
    smooth: ClassVar[bool] = True

    def __call__(self, z):
        return jax.nn.sigmoid(z)


@final
@dataclass(frozen=True)
class Sigmoid4Softplus(AbstractActivation):
    """sigma(z) = sigmoid(4 z) + softplus(z): smooth and without any sign or scaling symmetry (Şimşek et al. 2021).

    sigmoid(4 z) has poles at distance pi/4 from the real axis; its 4th-derivative moments (Hessians) need 192+
    quadrature nodes for 1e-10 consistency between Price Hessians and finite differences, hence 256.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> act = ls.Sigmoid4Softplus()
        >>> round(float(act(jnp.array(0.0))), 6), act.quadrature_order  # 1/2 + log 2
        (1.193147, 256)

    References:
        Şimşek et al., `Geometry of the Loss Landscape in Overparameterized Neural Networks: Symmetries and
        Invariances <https://arxiv.org/abs/2105.12221>`_, ICML 2021.
    """

    name: ClassVar[str] = "sigmoid4_softplus"
    smooth: ClassVar[bool] = True
    quadrature_order: ClassVar[int] = 256

    def __call__(self, z):
        return jax.nn.sigmoid(4.0 * z) + jax.nn.softplus(z)


ACTIVATIONS: tuple[type[AbstractActivation], ...] = (ReLU, LeakyReLU, ReLUPower, Softplus, Tanh, Erf, Sigmoid,
                                                     Sigmoid4Softplus)
"""Every concrete activation class."""
