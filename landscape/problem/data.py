"""Finite samples of inputs: Gaussian x ~ N(0, I_d) drawn from a seed, or inputs read from an ``.npz`` file."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["gaussian_inputs", "load_inputs"]


def gaussian_inputs(key, n_samples: int, input_dim: int) -> jnp.ndarray:
    """n i.i.d. draws x ~ N(0, I_d), shape (n, d)."""
    return jax.random.normal(key, (n_samples, input_dim))


def load_inputs(file: str, input_dim: int):
    """Read ``x`` (n, d) and optional labels ``y`` (n,) from an ``.npz`` file; returns ``(x, y or None)``."""
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"problem.data_file {file!r} not found")
    data = np.load(path)
    if "x" not in data:
        raise ValueError(f"problem.data_file {file!r} has no array 'x' of shape (n, {input_dim})")
    x = jnp.asarray(data["x"], float)
    if x.ndim != 2 or x.shape[1] != input_dim:
        raise ValueError(f"problem.data_file {file!r}: x has shape {x.shape}, expected (n, {input_dim})")
    y = jnp.asarray(data["y"], float) if "y" in data else None
    if y is not None and y.shape != (x.shape[0],):
        raise ValueError(f"problem.data_file {file!r}: y has shape {y.shape}, expected ({x.shape[0]},)")
    return x, y
