"""Teacher networks that label the inputs (papers.md, common setting and section 2).

- ``orthonormal``: V = first r* rows of I_d, unit output weights, no biases (Safran & Shamir 2018; Arjevani &
  Field 2021).
- ``gaussian``: rows v_j ~ N(0, I_d / d) (fan-in normalised), output weights ones or N(0, 1), biases N(0, 1/d).
- ``file``: an ``.npz`` with ``w`` (r*, d), ``a`` (r*,) and optionally ``b`` (r*,).

Each builder returns ``(network, params)`` with the full parameter dict of :mod:`landscape.problem.networks`.
Deep teachers (``hidden_widths`` with more than one entry) are random Gaussian MLPs.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .activations import Activation
from .networks import MLP, TwoLayerNet

__all__ = ["make_teacher", "output_weight_values"]


def output_weight_values(spec, width: int, key) -> jnp.ndarray:
    """Output weights from a spec: ``"ones"``, ``"gaussian"``, a number (all equal) or a list of numbers."""
    if isinstance(spec, str):
        if spec == "ones":
            return jnp.ones(width)
        if spec == "gaussian":
            return jax.random.normal(key, (width,))
        raise ValueError(f"unknown output weights {spec!r}")
    if isinstance(spec, int | float):
        return jnp.full(width, float(spec))
    return jnp.asarray(spec, dtype=float)


def make_teacher(
    kind: str,
    input_dim: int,
    width: int,
    activation: Activation,
    *,
    key,
    output_weights="ones",
    bias: bool = False,
    hidden_widths=(),
    file: str = "",
):
    """Build the teacher network and its parameters. See the module docstring for the kinds."""
    k_w, k_a, k_b = jax.random.split(key, 3)
    if len(hidden_widths) > 1:
        net = MLP(input_dim, tuple(hidden_widths), activation, bias)
        keys = jax.random.split(k_w, len(hidden_widths))
        layers, n_in = [], input_dim
        for k, n_out in zip(keys, hidden_widths, strict=True):
            kw, kb = jax.random.split(k)
            layer = {"w": jax.random.normal(kw, (n_out, n_in)) / jnp.sqrt(n_in)}
            if bias:
                layer["b"] = jax.random.normal(kb, (n_out,)) / jnp.sqrt(n_in)
            layers.append(layer)
            n_in = n_out
        return net, {"layers": tuple(layers), "a": output_weight_values(output_weights, width, k_a)}
    if kind == "file":
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"teacher.file {file!r} not found")
        data = np.load(path)
        missing = [k for k in ("w", "a") if k not in data]
        if missing:
            raise ValueError(f"teacher.file {file!r} lacks array {missing[0]!r}; it needs 'w' (r, d) and 'a' (r,)")
        w, a = jnp.asarray(data["w"], float), jnp.asarray(data["a"], float)
        if w.shape != (width, input_dim) or a.shape != (width,):
            raise ValueError(
                f"teacher.file {file!r} has w {w.shape}, a {a.shape}; the config asks for w ({width}, {input_dim})"
            )
        has_b = "b" in data
        net = TwoLayerNet(input_dim, width, activation, has_b)
        params = {"w": w, "a": a}
        if has_b:
            params["b"] = jnp.asarray(data["b"], float)
        return net, params
    net = TwoLayerNet(input_dim, width, activation, bias)
    if kind == "orthonormal":
        w = jnp.eye(input_dim)[:width]
    elif kind == "gaussian":
        w = jax.random.normal(k_w, (width, input_dim)) / jnp.sqrt(input_dim)
    else:
        raise ValueError(f"unknown teacher kind {kind!r}")
    params = {"w": w, "a": output_weight_values(output_weights, width, k_a)}
    if bias:
        params["b"] = jax.random.normal(k_b, (width,)) / jnp.sqrt(input_dim)
    return net, params
