"""Networks: two-layer nets and deep MLPs as pure functions of parameter pytrees.

Two-layer net of width m on x in R^d (README science, common setting):

    f(x; w, b, a) = sum_j a_j sigma(w_j . x + b_j)

Parameters are a dict ``{"w": (m, d), "b": (m,), "a": (m,)}``; ``"b"`` is present only with biases. Deep MLP
with hidden widths (n_1, ..., n_L):

    h_0 = x,  h_l = sigma(W_l h_{l-1} + b_l),  f(x) = a . h_L

with parameters ``{"layers": ({"w": (n_1, d), "b": (n_1,)}, ...), "a": (n_L,)}``. A two-layer net is the L = 1
case written flat, because the symmetry analysis works on its neurons (rows of w).

A network given without ``input_dim`` (``TwoLayer(width=3, activation=ReLU())``) is a student specification:
:class:`landscape.problem.problem.TeacherStudent` fills in the teacher's input dimension.

Frozen output weights are not part of the trainable pytree: the problem merges them back in before calling
``apply`` (see :mod:`landscape.problem.problem`). Every function here handles one input and one parameter set;
batching is done with ``vmap`` by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .activations import Activation, ReLU

__all__ = ["TwoLayer", "MLP", "Network"]


@dataclass(frozen=True)
class TwoLayer:
    """Two-layer network f(x) = sum_j a_j sigma(w_j . x + b_j) of width ``width`` on inputs of dim ``input_dim``.

    A frozen, hashable dataclass: the architecture only (static under ``jit``; it fixes the parameter shapes and so
    defines a compilation group). Parameters are a separate dict ``{"w": (m, d), "b": (m,) if bias, "a": (m,)}``
    (traced); :meth:`apply` handles one input and one parameter set, vmap over either outside.

    Args:
        width: number of hidden neurons m.
        activation: an :class:`landscape.AbstractActivation` (default :class:`landscape.ReLU`).
        bias: whether the hidden neurons have biases b_j.
        input_dim: input dimension d; None for a student specification (the problem fills in the teacher's d).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> net = ls.TwoLayer(width=2, activation=ls.ReLU(), input_dim=3)
        >>> net.shapes()
        {'w': (2, 3), 'a': (2,)}
        >>> params = {"w": jnp.eye(3)[:2], "a": jnp.array([1.0, -1.0])}
        >>> float(net.apply(params, jnp.array([1.0, 2.0, 3.0])))  # relu(1) - relu(2)
        -1.0
        >>> jax.vmap(net.apply, in_axes=(None, 0))(params, jnp.ones((5, 3))).shape  # a batch of inputs
        (5,)
    """

    width: int
    activation: Activation = field(default_factory=ReLU)
    bias: bool = False
    input_dim: int | None = None

    depth = 1

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return (self.width,)

    def shapes(self) -> dict:
        """Shapes of the full parameter dict (output weights included)."""
        s = {"w": (self.width, self.input_dim), "a": (self.width,)}
        if self.bias:
            s["b"] = (self.width,)
        return s

    def preactivations(self, params, x):
        """w_j . x + b_j for all j, shape (m,)."""
        z = params["w"] @ x
        if self.bias:
            z = z + params["b"]
        return z

    def apply(self, params, x):
        """f(x) for one input x of shape (d,); returns a scalar."""
        return params["a"] @ self.activation(self.preactivations(params, x))


@dataclass(frozen=True)
class MLP:
    """Deep MLP with hidden widths ``hidden_widths`` and a linear output f(x) = a^T h_L (scalar by default).

    h_0 = x, h_l = sigma(W_l h_{l-1} + b_l) for l = 1..L, with W_l of shape (n_l, n_{l-1}); parameters
    ``{"layers": ({"w": (n_1, d), "b": (n_1,)}, ...), "a": (n_L,)}`` (``"b"`` only with biases). With
    ``outputs = K > 1`` the output weights are ``"a": (n_L, K)`` and f(x) = a^T h_L has shape (K,) (e.g. one-hot
    classification targets). Like :class:`TwoLayer`, a static architecture; one input and one parameter set per call.

    Args:
        hidden_widths: (n_1, ..., n_L), the hidden widths; ``width`` is n_L and ``depth`` is L.
        activation: an :class:`landscape.AbstractActivation` (default :class:`landscape.ReLU`).
        bias: whether every hidden layer has biases.
        input_dim: input dimension d; None for a student specification.
        outputs: number K of outputs; 1 (default) gives a scalar output and ``"a"`` of shape (n_L,).

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> mlp = ls.MLP(hidden_widths=(4, 2), input_dim=3)
        >>> mlp.shapes()
        {'layers': ({'w': (4, 3)}, {'w': (2, 4)}), 'a': (2,)}
        >>> params = {"layers": ({"w": jnp.ones((4, 3))}, {"w": jnp.ones((2, 4))}), "a": jnp.ones(2)}
        >>> float(mlp.apply(params, jnp.ones(3)))  # 2 * (4 * 3)
        24.0

    References:
        Bona-Pellissier, Malgouyres & Bachoc, `Geometry-induced Implicit Regularization in Deep ReLU Neural
        Networks <https://arxiv.org/abs/2402.08269>`_, 2024.
    """

    hidden_widths: tuple[int, ...]
    activation: Activation = field(default_factory=ReLU)
    bias: bool = False
    input_dim: int | None = None
    outputs: int = 1

    def __post_init__(self):
        object.__setattr__(self, "hidden_widths", tuple(int(n) for n in self.hidden_widths))
        if int(self.outputs) < 1:
            raise ValueError(f"MLP outputs = {self.outputs} must be >= 1")

    @property
    def depth(self) -> int:
        return len(self.hidden_widths)

    @property
    def width(self) -> int:
        return self.hidden_widths[-1]

    def shapes(self) -> dict:
        fan_in = (self.input_dim,) + tuple(self.hidden_widths[:-1])
        layers = []
        for n_in, n_out in zip(fan_in, self.hidden_widths, strict=True):
            layer = {"w": (n_out, n_in)}
            if self.bias:
                layer["b"] = (n_out,)
            layers.append(layer)
        a = (self.hidden_widths[-1],) if self.outputs == 1 else (self.hidden_widths[-1], int(self.outputs))
        return {"layers": tuple(layers), "a": a}

    def hidden(self, params, x):
        """Last hidden layer h_L for one input x."""
        h = x
        for layer in params["layers"]:
            z = layer["w"] @ h
            if self.bias:
                z = z + layer["b"]
            h = self.activation(z)
        return h

    def apply(self, params, x):
        """f(x) = a^T h_L for one input x of shape (d,); a scalar, or shape (K,) when ``outputs = K > 1``."""
        return self.hidden(params, x) @ params["a"]


Network = TwoLayer | MLP

