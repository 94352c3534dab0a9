"""Activation functions and the symmetry facts each one carries.

An :class:`Activation` is a frozen, hashable description (name and parameters) so it can be a static field of
a jitted problem. It declares the facts the symmetry analysis needs (papers.md, section 1):

- ``homogeneity``: degree p of positive homogeneity, sigma(c z) = c^p sigma(z) for c > 0 (relu: 1, relu^p: p),
  or ``None``. Positively homogeneous activations have the rescaling symmetry (w, b, a) -> (c w, c b, a / c^p).
- ``odd``: sigma(-z) = -sigma(z) (tanh, erf): sign flips (w, b, a) -> (-w, -b, -a) are symmetries.
- ``zero_at_zero``: sigma(0) = 0, so a neuron with w = 0 and b = 0 contributes nothing.
- ``smooth``: C-infinity, so Price's theorem and second-order splitting analysis (sigma'') apply.

Names accepted by :func:`get_activation`: ``relu``, ``leaky_relu(alpha)``, ``relu^p`` (polynomial ReLU),
``softplus``, ``tanh``, ``erf``, ``sigmoid`` and ``sigmoid4_softplus`` (g(z) = sigmoid(4 z) + softplus(z), smooth
and without any sign or scaling symmetry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jax
import jax.numpy as jnp

__all__ = ["Activation", "get_activation", "ACTIVATION_NAMES"]

ACTIVATION_NAMES = (
    "relu",
    "leaky_relu(alpha)",
    "relu^p",
    "softplus",
    "tanh",
    "erf",
    "sigmoid",
    "sigmoid4_softplus",
)


@dataclass(frozen=True)
class Activation:
    """A scalar activation sigma and its symmetry facts (see module docstring).

    ``param`` holds alpha for leaky_relu and p for relu^p, else ``None``. Call it on arrays: ``act(z)``.
    """

    name: str
    param: float | None = None

    def __call__(self, z):
        n, p = self.name, self.param
        if n == "relu":
            return jax.nn.relu(z)
        if n == "leaky_relu":
            return jnp.where(z > 0, z, p * z)
        if n == "relu_p":
            r = jax.nn.relu(z)
            return r ** int(p)
        if n == "softplus":
            return jax.nn.softplus(z)
        if n == "tanh":
            return jnp.tanh(z)
        if n == "erf":
            return jax.scipy.special.erf(z)
        if n == "sigmoid":
            return jax.nn.sigmoid(z)
        if n == "sigmoid4_softplus":
            return jax.nn.sigmoid(4.0 * z) + jax.nn.softplus(z)
        raise ValueError(f"unknown activation {n!r}")

    @property
    def label(self) -> str:
        """The name as written in configs (``leaky_relu(0.1)``, ``relu^2``)."""
        if self.name == "leaky_relu":
            return f"leaky_relu({self.param:g})"
        if self.name == "relu_p":
            return f"relu^{int(self.param)}"
        return self.name

    @property
    def homogeneity(self) -> float | None:
        """Degree p of positive homogeneity sigma(c z) = c^p sigma(z), c > 0; None if not homogeneous."""
        if self.name in ("relu", "leaky_relu"):
            return 1.0
        if self.name == "relu_p":
            return float(self.param)
        return None

    @property
    def odd(self) -> bool:
        """Whether sigma(-z) = -sigma(z)."""
        return self.name in ("tanh", "erf")

    @property
    def zero_at_zero(self) -> bool:
        """Whether sigma(0) = 0."""
        return self.name in ("relu", "leaky_relu", "relu_p", "tanh", "erf")

    @property
    def smooth(self) -> bool:
        """Whether sigma is C-infinity (needed for Price's theorem and sigma'' in splitting analysis)."""
        return self.name in ("softplus", "tanh", "erf", "sigmoid", "sigmoid4_softplus")

    def facts(self) -> dict:
        """The symmetry facts as a plain dict (for summaries and reports)."""
        return {
            "activation": self.label,
            "homogeneity": self.homogeneity,
            "odd": self.odd,
            "zero_at_zero": self.zero_at_zero,
            "smooth": self.smooth,
        }


_PARAM_RE = re.compile(r"^leaky_relu\(\s*([-+0-9.eE]+)\s*\)$")
_POWER_RE = re.compile(r"^relu\^\s*([0-9]+)$")


def get_activation(spec: str) -> Activation:
    """Parse an activation name as written in configs, e.g. ``"relu"``, ``"leaky_relu(0.1)"``, ``"relu^2"``.

    Raises ``ValueError`` with the accepted names if ``spec`` is not one of them.
    """
    s = spec.strip().lower()
    if s in ("relu", "softplus", "tanh", "erf", "sigmoid", "sigmoid4_softplus"):
        return Activation(s)
    if s == "leaky_relu":
        return Activation("leaky_relu", 0.01)
    m = _PARAM_RE.match(s)
    if m:
        alpha = float(m.group(1))
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"leaky_relu slope must be in [0, 1), got {alpha}")
        return Activation("leaky_relu", alpha)
    m = _POWER_RE.match(s)
    if m:
        p = int(m.group(1))
        if p < 1:
            raise ValueError(f"relu^p needs an integer p >= 1, got {p}")
        return Activation("relu") if p == 1 else Activation("relu_p", float(p))
    raise ValueError(f"unknown activation {spec!r}; use one of: {', '.join(ACTIVATION_NAMES)}")
