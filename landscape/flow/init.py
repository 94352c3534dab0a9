"""Initialisations of the trainable parameters, for one student (vmap over keys for a batch).

``scale`` multiplies a fan-in-normalised draw, so scale = 1 is the usual LeCun/Xavier initialisation and
small initialisation is scale << 1 (down to 1e-6):

- ``gaussian``: every entry N(0, 1 / fan_in) times ``scale`` (fan_in = d for first-layer weights and biases,
  the width of the previous layer for deeper weights, the last hidden width for output weights).
- ``orthogonal``: weight matrices with orthonormal rows (or columns, if taller than wide) times ``scale``;
  output weights and biases as for ``gaussian``.
- ``sphere``: the whole trainable vector uniform on the sphere of radius ``scale`` (Kumar & Haupt 2024:
  theta(0) = delta * w0 with |w0| = 1).
"""

from __future__ import annotations

from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["init_params", "init_batch", "AbstractInit", "GaussianInit", "OrthogonalInit", "SphereInit"]


def _fan_in(path, shape, input_dim):
    name = path[-1].key if hasattr(path[-1], "key") else str(path[-1])
    if name == "b":
        # biases share the fan-in of their layer's weights: d for the first layer
        return input_dim if len(path) == 1 or getattr(path[1], "idx", 0) == 0 else shape[0]
    if name == "a":
        return shape[0]
    return shape[1]


def init_params(key, problem, *, scale, distribution: str = "gaussian"):
    """One draw of the trainable parameters ``theta`` of ``problem``'s student (a dict pytree)."""
    shapes = problem.trainable_shapes
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(
        shapes, is_leaf=lambda s: isinstance(s, tuple) and all(isinstance(i, int) for i in s)
    )
    keys = jax.random.split(key, len(leaves_with_path))
    d = problem.student.input_dim
    out = []
    for k, (path, shape) in zip(keys, leaves_with_path, strict=True):
        name = path[-1].key if hasattr(path[-1], "key") else None
        std = 1.0 / jnp.sqrt(_fan_in(path, shape, d))
        if distribution == "orthogonal" and name == "w":
            leaf = jax.nn.initializers.orthogonal()(k, shape)
        else:
            leaf = std * jax.random.normal(k, shape)
        out.append(leaf)
    theta = jax.tree_util.tree_unflatten(treedef, out)
    if distribution == "sphere":
        flat, unravel = ravel_pytree(theta)
        theta = unravel(flat / jnp.linalg.norm(flat))
    return jax.tree.map(lambda x: scale * x, theta)


def init_batch(key, problem, count: int, *, scale, distribution: str = "gaussian"):
    """``count`` independent draws; every leaf gets a leading axis of size ``count``."""
    keys = jax.random.split(key, count)
    return jax.vmap(lambda k: init_params(k, problem, scale=scale, distribution=distribution))(keys)


class AbstractInit(eqx.Module):
    """How initial trainable parameters are drawn, for one student: ``init.sample(key, problem)``.

    ``scale`` is a traced leaf (a sweep over it reuses one compilation); the distribution is the class.
    theta(0) = scale * theta_hat with theta_hat fan-in normalised (see the module docstring). For a batch, vmap
    over keys: ``jax.vmap(lambda k: init.sample(k, problem))(jax.random.split(key, n))`` gives every leaf a
    leading axis n (what :func:`landscape.explore` does).

    Args:
        scale: overall scale of theta(0) (scale << 1: small initialisation).

    Example:
        >>> import jax, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> init = ls.GaussianInit(1e-3)
        >>> theta = init.sample(jax.random.key(0), problem)
        >>> theta["w"].shape, theta["a"].shape, float(abs(theta["w"]).max()) < 1e-2
        ((2, 3), (2,), True)
    """

    scale: jax.Array

    def __init__(self, scale=1.0):
        self.scale = jnp.asarray(scale, float)

    distribution: ClassVar[str]

    def sample(self, key, problem):
        """One draw theta(0) (a dict pytree of the problem's trainable shapes); pure, jittable, vmappable over key.

        Args:
            key: PRNG key.
            problem: a :class:`landscape.TeacherStudent`.

        Returns:
            A trainable parameter dict with shapes ``problem.trainable_shapes``.
        """
        return init_params(key, problem, scale=self.scale, distribution=self.distribution)


@final
class GaussianInit(AbstractInit):
    """Every entry N(0, 1 / fan_in) times ``scale`` (scale 1: LeCun/Xavier; scale << 1: small initialisation).

    Args:
        scale: multiplies the fan-in-normalised draw (traced).

    Example:
        >>> import jax, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> theta = ls.GaussianInit(0.5).sample(jax.random.key(0), problem)
        >>> {k: v.shape for k, v in theta.items()}
        {'a': (2,), 'w': (2, 3)}
    """

    distribution: ClassVar[str] = "gaussian"


@final
class OrthogonalInit(AbstractInit):
    """Weight matrices with orthonormal rows (or columns) times ``scale``; other entries as :class:`GaussianInit`.

    Args:
        scale: multiplies the draw (traced): W W^T = scale^2 I for a wide weight matrix W.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> w = ls.OrthogonalInit(1.0).sample(jax.random.key(0), problem)["w"]  # (2, 3)
        >>> bool(jnp.allclose(w @ w.T, jnp.eye(2)))
        True
    """

    distribution: ClassVar[str] = "orthogonal"


@final
class SphereInit(AbstractInit):
    """The whole trainable vector uniform on the sphere of radius ``scale`` (Kumar & Haupt 2024: delta * w0).

    theta(0) = delta w0 with |w0| = 1 (all trainable parameters flattened) and delta = ``scale``.

    Args:
        scale: the radius delta (traced).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> theta = ls.SphereInit(1e-3).sample(jax.random.key(0), problem)
        >>> round(float(jnp.sqrt(sum(jnp.sum(x**2) for x in theta.values()))), 12)
        0.001

    References:
        Kumar & Haupt, `Early Directional Convergence in Deep Homogeneous Neural Networks for Small
        Initializations <https://arxiv.org/abs/2403.08121>`_, 2024.
    """

    distribution: ClassVar[str] = "sphere"
