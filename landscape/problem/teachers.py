"""Teacher networks that label the inputs (README, science: common setting and section 2).

A :class:`Teacher` is an equinox Module: its parameters are array leaves (traced, so problems that differ only in
teacher values share one compilation), its architecture is static. Constructors:

- :meth:`Teacher.orthonormal`: V = first r* rows of I_d, unit output weights, no biases (Safran & Shamir 2018;
  Arjevani & Field 2021).
- :meth:`Teacher.gaussian`: rows v_j ~ N(0, I_d / d) (fan-in normalised), output weights ones or N(0, 1), biases
  N(0, 1/d); with ``hidden_widths`` of more than one entry, a random Gaussian deep MLP.
- :meth:`Teacher.from_file`: an ``.npz`` with ``w`` (r*, d), ``a`` (r*,) and optionally ``b`` (r*,).
- ``Teacher(params={"w": ..., "a": ...})``: given arrays.

The activation may be left out: :class:`landscape.problem.problem.TeacherStudent` then gives the teacher the
student's activation.

Example:
    >>> import jax, landscape as ls
    >>> t = ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1))
    >>> t.params["w"].shape, t.width
    ((3, 4), 3)
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .activations import Activation
from .data import check_finite, read_npz
from .networks import MLP, Network, TwoLayer

__all__ = ["Teacher", "output_weight_values"]


def output_weight_values(spec, width: int, key) -> jnp.ndarray:
    """Output weights from a spec: ``"ones"``, ``"gaussian"`` (N(0, 1) from ``key``), a number or an array."""
    use = "use \"ones\", \"gaussian\", a number or an array"
    if isinstance(spec, str):
        if spec == "ones":
            return jnp.ones(width)
        if spec == "gaussian":
            return jax.random.normal(key, (width,))
        raise ValueError(f"unknown output weights {spec!r}; {use}")
    if isinstance(spec, bool) or (isinstance(spec, list | tuple) and any(isinstance(v, bool) for v in spec)):
        raise ValueError(f"output weights {spec!r} are not numbers; {use}")
    if isinstance(spec, int | float):
        if not math.isfinite(spec):
            raise ValueError(f"output weights {spec!r} are not finite; {use} of finite values")
        return jnp.full(width, float(spec), dtype=float)
    if isinstance(spec, jax.core.Tracer):
        a = jnp.asarray(spec, dtype=float)
    else:
        try:
            a = jnp.asarray(np.asarray(spec, dtype=float))
        except (TypeError, ValueError):
            raise ValueError(f"output weights {spec!r} are not numbers; {use}") from None
        if not bool(np.all(np.isfinite(np.asarray(a)))):
            raise ValueError(f"output weights {spec!r} are not finite; {use} of finite values")
    if a.shape != (width,):
        raise ValueError(f"output weights have shape {a.shape}; the teacher needs ({width},)")
    return a


class Teacher(eqx.Module):
    """A teacher network: parameters (array leaves) and architecture (static); see the module docstring.

    The teacher labels inputs, y(x) = f(x; V, b, c) = sum_j c_j sigma(v_j . x + b_j) for two layers (V (r*, d),
    c (r*,)), or a deep MLP. Its parameters are traced, so problems that differ only in teacher values share one
    compilation; ``hidden_widths``, ``bias`` and ``activation`` are static.

    Args:
        params: full parameter dict of :mod:`landscape.problem.networks` ({"w": (r*, d), "a": (r*,)[, "b": (r*,)]}
            for two layers, {"layers": (...), "a"} for a deep MLP).
        hidden_widths: () for a two-layer teacher, else all hidden widths of the MLP.
        bias: whether the teacher has biases.
        activation: its activation, or None to take the student's.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> t = ls.Teacher({"w": jnp.eye(3)[:2], "a": jnp.ones(2)}, activation=ls.ReLU())
        >>> t.input_dim, t.width, float(t(jnp.array([1.0, -2.0, 5.0])))  # relu(1) + relu(-2)
        (3, 2, 1.0)

    References:
        Safran & Shamir, `Spurious Local Minima are Common in Two-Layer ReLU Neural Networks
        <https://arxiv.org/abs/1712.08968>`_, ICML 2018.
    """

    params: dict
    hidden_widths: tuple = eqx.field(static=True, default=())
    bias: bool = eqx.field(static=True, default=False)
    activation: Activation | None = eqx.field(static=True, default=None)

    @property
    def input_dim(self) -> int:
        """Input dimension d."""
        w = self.params["layers"][0]["w"] if self.hidden_widths else self.params["w"]
        return int(w.shape[1])

    @property
    def width(self) -> int:
        """Width r* of the last hidden layer (the number of teacher neurons of a two-layer teacher)."""
        return int(self.params["a"].shape[0])

    def with_activation(self, activation: Activation) -> Teacher:
        """The same teacher with ``activation`` (used to give a teacher without one the student's)."""
        return Teacher(self.params, self.hidden_widths, self.bias, activation)

    @property
    def network(self) -> Network:
        """The teacher's network (needs an activation)."""
        if self.activation is None:
            raise ValueError("this teacher has no activation yet; pass activation= or build it into a TeacherStudent")
        if self.hidden_widths:
            return MLP(self.hidden_widths, self.activation, self.bias, self.input_dim)
        return TwoLayer(self.width, self.activation, self.bias, self.input_dim)

    def __call__(self, x):
        """Teacher output y(x) for one input x of shape (d,)."""
        return self.network.apply(self.params, x)

    @classmethod
    def orthonormal(cls, d: int, width: int, *, output_weights="ones", key=None,
                    activation: Activation | None = None) -> Teacher:
        """V = first ``width`` rows of I_d; output weights ``"ones"`` (default), a number or an array.

        With unit output weights this is the teacher y(x) = sum_{j <= r*} relu(x_j) of Safran & Shamir (2018) and
        Arjevani & Field (2021) (V = I_d when ``width = d``).

        Args:
            d: input dimension.
            width: number of teacher neurons r* <= d.
            output_weights: ``"ones"``, ``"gaussian"`` (N(0, 1), needs ``key``), a number or an array (r*,).
            key: PRNG key, needed only for ``output_weights="gaussian"``.
            activation: the teacher's activation (None: the student's).

        Returns:
            A two-layer :class:`Teacher` with ``params["w"]`` of shape (r*, d).

        Raises:
            ValueError: if ``width > d`` or the output weights do not fit.

        Example:
            >>> import landscape as ls
            >>> t = ls.Teacher.orthonormal(d=3, width=2)
            >>> t.params["w"].tolist(), t.params["a"].tolist()
            ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [1.0, 1.0])

        References:
            Safran & Shamir, `Spurious Local Minima are Common in Two-Layer ReLU Neural Networks
            <https://arxiv.org/abs/1712.08968>`_, ICML 2018.

            Arjevani & Field, `Analytic Study of Families of Spurious Minima in Two-Layer ReLU Neural Networks:
            A Tale of Symmetry II <https://arxiv.org/abs/2107.10370>`_, NeurIPS 2021.
        """
        if width > d:
            raise ValueError(f"an orthonormal teacher has at most d = {d} neurons, got width {width}")
        k_a = jax.random.split(key if key is not None else jax.random.PRNGKey(0), 3)[1]
        return cls({"w": jnp.eye(d)[:width], "a": output_weight_values(output_weights, width, k_a)},
                   activation=activation)

    @classmethod
    def gaussian(cls, d: int, width: int, *, key, output_weights="ones", bias: bool = False,
                 hidden_widths=(), activation: Activation | None = None) -> Teacher:
        """Rows N(0, I_d / d), output weights ``"ones"`` | ``"gaussian"`` | number | array, biases N(0, 1/d).

        With ``hidden_widths`` of two or more entries (the last equal to ``width``), a deep MLP whose layers are
        N(0, 1 / fan_in).

        Args:
            d: input dimension.
            width: number of (last-layer) teacher neurons r*.
            key: PRNG key (keyword-only, required).
            output_weights: ``"ones"`` (default), ``"gaussian"``, a number or an array (r*,).
            bias: whether to draw biases.
            hidden_widths: () or (n,) for a two-layer teacher; (n_1, ..., n_L) with L >= 2 for a deep MLP.
            activation: the teacher's activation (None: the student's).

        Returns:
            A :class:`Teacher`.

        Example:
            >>> import jax, landscape as ls
            >>> t = ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1), output_weights="gaussian", bias=True)
            >>> {k: v.shape for k, v in t.params.items()}
            {'w': (3, 4), 'a': (3,), 'b': (3,)}
        """
        k_w, k_a, k_b = jax.random.split(key, 3)
        hidden_widths = tuple(int(n) for n in hidden_widths)
        if len(hidden_widths) > 1:
            keys = jax.random.split(k_w, len(hidden_widths))
            layers, n_in = [], d
            for k, n_out in zip(keys, hidden_widths, strict=True):
                kw, kb = jax.random.split(k)
                layer = {"w": jax.random.normal(kw, (n_out, n_in)) / jnp.sqrt(n_in)}
                if bias:
                    layer["b"] = jax.random.normal(kb, (n_out,)) / jnp.sqrt(n_in)
                layers.append(layer)
                n_in = n_out
            params = {"layers": tuple(layers), "a": output_weight_values(output_weights, width, k_a)}
            return cls(params, hidden_widths, bias, activation)
        params = {"w": jax.random.normal(k_w, (width, d)) / jnp.sqrt(d),
                  "a": output_weight_values(output_weights, width, k_a)}
        if bias:
            params["b"] = jax.random.normal(k_b, (width,)) / jnp.sqrt(d)
        return cls(params, (), bias, activation)

    @classmethod
    def from_file(cls, path, *, activation: Activation | None = None) -> Teacher:
        """Read ``w`` (r*, d), ``a`` (r*,) and optionally ``b`` (r*,) from an ``.npz`` file.

        Args:
            path: the ``.npz`` file.
            activation: the teacher's activation (None: the student's).

        Returns:
            A two-layer :class:`Teacher` (with biases if the file has ``b``).

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if ``w`` or ``a`` is missing or their shapes do not fit.

        Example:
            >>> import os, tempfile, numpy as np, landscape as ls
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     np.savez(os.path.join(tmp, "teacher.npz"), w=np.eye(3)[:2], a=np.ones(2))
            ...     ls.Teacher.from_file(os.path.join(tmp, "teacher.npz")).width
            2
        """
        what = f"teacher file {str(path)!r}"
        data = read_npz(path, what, "numpy.savez(path, w=w, a=a)")
        missing = [k for k in ("w", "a") if k not in data]
        if missing:
            raise ValueError(f"{what} lacks array {missing[0]!r}; it needs 'w' (r, d) and 'a' (r,)")
        w, a = data["w"], data["a"]
        if w.ndim != 2 or 0 in w.shape:
            raise ValueError(f"{what} has w of shape {w.shape}; it needs a 2-D array (r, d): r teacher neurons, "
                             "d inputs")
        r = w.shape[0]
        for name in ("a", "b"):
            if name in data and data[name].shape != (r,):
                raise ValueError(f"{what} has {name} of shape {data[name].shape}; with w {w.shape} it needs ({r},)")
        for name in ("w", "a", "b"):
            if name in data:
                check_finite(what, name, data[name])
        params = {"w": jnp.asarray(w, float), "a": jnp.asarray(a, float)}
        if "b" in data:
            params["b"] = jnp.asarray(data["b"], float)
        return cls(params, (), "b" in data, activation)
