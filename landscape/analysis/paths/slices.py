"""Loss on lines and planes through a point: Hessian, random, filter-normalised and three-point directions.

A slice through theta_0 along unit directions e_1 (and e_2) of the flattened trainable vector is

    L(alpha) = L(theta_0 + alpha e_1)                       (a line),
    L(alpha, beta) = L(theta_0 + alpha e_1 + beta e_2)      (a plane),

evaluated on a grid that contains the origin exactly (coordinates are integer multiples of the grid step): the grid
point (0, 0) is theta_0 itself, bit for bit (theta_0 + 0.0 e = theta_0), so the value there is the loss at theta_0
(equal to a loss computed by another compiled program, e.g. the one ``landscape run`` stored, up to the last few
bits that XLA's fusion at another batch size may change). The whole grid, with the marked points, is one
``jit(vmap(loss))`` call (padded to a power of two of at least 64 points, so similar grids share a compilation).
By default the loss is the accurate one (:meth:`landscape.TeacherStudent.loss_accurate`, the value ``landscape run``
stores), which resolves the zero-loss level of global minima (~1e-31) instead of the 1e-16 rounding noise of the
kernel form.

Directions (each a (P,) array in the order of ``jax.flatten_util.ravel_pytree``, see
:func:`landscape.hessian_matrix`):

- :func:`hessian_directions`: eigenvectors of the dense Hessian at theta_0: ``"most_negative"`` (lowest
  eigenvalue: the descent direction of a saddle), ``"smallest"`` (smallest |lambda|: the flattest direction, a
  symmetry direction at a certified point), ``"largest"`` (largest eigenvalue: the stiffest direction);
- :func:`random_direction`: a Gaussian direction, optionally filter-normalised (Li et al. 2018): the direction's
  block of every neuron (its incoming row w_j, with b_j) is rescaled to the norm of that neuron's block in theta_0,
  and the output-weight vector a (one filter of the output layer) to |a|; with ``filter_normalized=False`` a unit
  vector. Filter normalisation makes slices comparable across the positive-rescaling symmetry of ReLU nets;
- :func:`plane_through`: the plane through three points theta_0, theta_1, theta_2 with an orthonormal basis
  (Gram-Schmidt of theta_1 - theta_0, theta_2 - theta_0), so distances in the picture are true distances.

References:
    Li, Xu, Taylor, Studer, Goldstein, `Visualizing the Loss Landscape of Neural Nets
    <https://arxiv.org/abs/1712.09913>`_, NeurIPS 2018 (filter normalisation).

    Goodfellow, Vinyals, Saxe, Qualitatively characterizing neural network optimization problems, ICLR 2015.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ...flow.programs import persistent_jit
from ..hessian import hessian_matrix

__all__ = ["Slice", "HESSIAN_WHICH", "hessian_directions", "random_direction", "plane_through", "grid_axis",
           "loss_slice"]

HESSIAN_WHICH = ("most_negative", "smallest", "largest")
"""Names of the Hessian eigenvectors :func:`hessian_directions` returns."""


@dataclass(frozen=True)
class Slice:
    """The loss on a line or a plane through a point (numpy arrays, host side).

    Attributes:
        alphas: (n1,) coordinates along ``directions[0]`` (0.0 at index ``origin[0]``).
        betas: (n2,) coordinates along ``directions[1]``, or None for a line.
        loss: (n1,) or (n1, n2) loss values, ``loss[i, j] = L(theta_0 + alphas[i] e_1 + betas[j] e_2)``.
        origin: grid index of theta_0 ((i,) or (i, j)).
        origin_loss: the loss at theta_0 read off the grid (``loss[origin]``).
        directions: (k, P) directions used (k = 1 or 2).
        labels: names of the directions.
        marks: name -> coordinates (1 or 2 floats) of points to mark (theta_0 and, for a plane through three
            points, the other two).
        mark_loss: name -> the loss at each marked point's exact coordinates (evaluated with the grid).
        accurate: whether the accurate loss was evaluated.
    """

    alphas: np.ndarray
    betas: np.ndarray | None
    loss: np.ndarray
    origin: tuple
    origin_loss: float
    directions: np.ndarray
    labels: tuple
    marks: dict = field(default_factory=dict)
    mark_loss: dict = field(default_factory=dict)
    accurate: bool = True

    @property
    def ndim(self) -> int:
        """1 for a line, 2 for a plane."""
        return 1 if self.betas is None else 2

    def summary(self) -> dict:
        """JSON-able numbers: grid sizes and ranges, loss at the origin, min/max loss, marked points."""
        finite = self.loss[np.isfinite(self.loss)]
        out = {"ndim": self.ndim, "labels": list(self.labels), "shape": list(self.loss.shape),
               "alpha_range": [float(self.alphas[0]), float(self.alphas[-1])], "origin_loss": float(self.origin_loss),
               "loss_min": float(finite.min()) if finite.size else float("nan"),
               "loss_max": float(finite.max()) if finite.size else float("nan"),
               "n_nonfinite": int(self.loss.size - finite.size), "accurate": bool(self.accurate),
               "marks": {k: [float(c) for c in v] for k, v in self.marks.items()},
               "mark_loss": {k: float(v) for k, v in self.mark_loss.items()}}
        if self.betas is not None:
            out["beta_range"] = [float(self.betas[0]), float(self.betas[-1])]
        return out


def hessian_directions(problem, theta, which=HESSIAN_WHICH):
    """Unit Hessian eigenvectors at ``theta`` and their eigenvalues.

    Args:
        problem: a :class:`landscape.TeacherStudent`.
        theta: trainable parameter dict of one student.
        which: names from :data:`HESSIAN_WHICH`: ``"most_negative"`` (lowest eigenvalue), ``"smallest"`` (smallest
            |lambda|), ``"largest"`` (largest eigenvalue).

    Returns:
        ``(directions, eigenvalues)``: a (k, P) array of unit vectors and the (k,) eigenvalues.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> from landscape.analysis.paths import hessian_directions
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=2, width=2), ls.TwoLayer(width=2))
        >>> dirs, lam = hessian_directions(problem, {"w": jnp.eye(2), "a": jnp.ones(2)}, ["largest"])
        >>> dirs.shape, bool(lam[0] > 0)
        ((1, 6), True)
    """
    unknown = [w for w in which if w not in HESSIAN_WHICH]
    if unknown:
        raise ValueError(f"unknown Hessian direction {unknown[0]!r}; use one of {', '.join(HESSIAN_WHICH)}")
    h = np.asarray(jax.jit(hessian_matrix)(problem, theta), float)
    lam, vec = np.linalg.eigh(0.5 * (h + h.T))
    pick = {"most_negative": int(np.argmin(lam)), "smallest": int(np.argmin(np.abs(lam))),
            "largest": int(np.argmax(lam))}
    idx = [pick[w] for w in which]
    return vec[:, idx].T.copy(), lam[idx].copy()


def random_direction(theta, *, key, filter_normalized: bool = True):
    """A Gaussian random direction at ``theta``, filter-normalised (Li et al. 2018) or a unit vector.

    Filter normalisation: with d ~ N(0, I) of the shapes of ``theta``, every neuron's block of a hidden layer (its
    incoming row w_j and bias b_j) is rescaled to |(w_j, b_j)| of ``theta``, and the output weights a (one filter
    of the output layer) to |a|. Deep MLPs (``{"layers": ..., "a": ...}``) are handled layer by layer.

    Args:
        theta: trainable parameter dict of one student.
        key: a JAX PRNG key (keyword-only).
        filter_normalized: rescale per filter (True) or return a unit vector (False).

    Returns:
        (P,) array in the order of ``ravel_pytree(theta)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from landscape.analysis.paths import random_direction
        >>> theta = {"w": jnp.array([[3.0, 4.0], [0.0, 1.0]]), "a": jnp.array([1.0, 1.0])}
        >>> d = random_direction(theta, key=jax.random.key(0))
        >>> [round(float(jnp.linalg.norm(d[2:4])), 6), round(float(jnp.linalg.norm(d[4:])), 6)]  # rows of w
        [5.0, 1.0]
    """
    flat, unravel = ravel_pytree(theta)
    d = unravel(jax.random.normal(key, flat.shape, flat.dtype))
    if not filter_normalized:
        v = ravel_pytree(d)[0]
        return v / jnp.linalg.norm(v)

    def layer(dl, tl):
        # rows of w (with b) are the filters of a hidden layer
        dw, tw = dl["w"], tl["w"]
        rows_d = jnp.concatenate([dw, dl["b"][:, None]], axis=1) if "b" in dl else dw
        rows_t = jnp.concatenate([tw, tl["b"][:, None]], axis=1) if "b" in tl else tw
        scale = jnp.linalg.norm(rows_t, axis=1) / jnp.linalg.norm(rows_d, axis=1)
        out = {**dl, "w": dw * scale[:, None]}
        if "b" in dl:
            out["b"] = dl["b"] * scale
        return out

    out = dict(d)
    if "layers" in d:
        out["layers"] = tuple(layer(dl, tl) for dl, tl in zip(d["layers"], theta["layers"], strict=True))
    elif "w" in d:
        out.update(layer(d, theta))
    if "a" in d:
        out["a"] = d["a"] * jnp.linalg.norm(theta["a"]) / jnp.linalg.norm(d["a"])
    return ravel_pytree(out)[0]


def plane_through(theta0, theta1, theta2):
    """Orthonormal directions of the plane through three points and the points' coordinates in it.

    e_1 = (theta_1 - theta_0) / |theta_1 - theta_0|, e_2 = the normalised part of theta_2 - theta_0 orthogonal to
    e_1 (Gram-Schmidt). Coordinates: theta_0 at (0, 0), theta_1 at (|theta_1 - theta_0|, 0), theta_2 at
    (e_1 . (theta_2 - theta_0), e_2 . (theta_2 - theta_0)).

    Args:
        theta0, theta1, theta2: trainable parameter dicts of the same shapes.

    Returns:
        ``(directions, coords)``: (2, P) array and a (3, 2) array of the points' plane coordinates.

    Raises:
        ValueError: if the three points are (numerically) on one line.
    """
    x0, x1, x2 = (np.asarray(ravel_pytree(t)[0], float) for t in (theta0, theta1, theta2))
    d1, d2 = x1 - x0, x2 - x0
    n1 = np.linalg.norm(d1)
    if n1 == 0.0:
        raise ValueError("plane through three points: the first two points coincide")
    e1 = d1 / n1
    r = d2 - (e1 @ d2) * e1
    nr = np.linalg.norm(r)
    if nr <= 1e-12 * max(1.0, np.linalg.norm(d2)):
        raise ValueError("plane through three points: the points are on one line; choose another third point")
    e2 = r / nr
    coords = np.array([[0.0, 0.0], [n1, 0.0], [e1 @ d2, e2 @ d2]])
    return np.stack([e1, e2]), coords


def grid_axis(lo: float, hi: float, n: int) -> tuple[np.ndarray, int]:
    """n coordinates covering [lo, hi] (lo <= 0 <= hi) that contain 0.0 exactly; returns (coords, index of 0).

    Coordinates are ``(arange(n) - i0) * step`` with step = (hi - lo) / (n - 1), so the origin is an exact 0.0.
    """
    if not (lo <= 0.0 <= hi) or not hi > lo:
        raise ValueError(f"grid range [{lo}, {hi}] must contain 0 and have hi > lo")
    if n < 3:
        raise ValueError(f"a slice needs at least 3 grid points per axis, got {n}")
    step = (hi - lo) / (n - 1)
    i0 = int(round(-lo / step))
    return (np.arange(n) - i0) * step, i0


@persistent_jit
def _grid_loss(problem, theta, dirs, coords, accurate: bool):
    # coords (N, k), dirs (k, P): the whole grid in one vmapped call
    x0, unravel = ravel_pytree(theta)
    f = problem.loss_accurate if accurate else problem.loss
    return jax.vmap(lambda c: f(unravel(x0 + c @ dirs)))(coords)


def loss_slice(problem, theta, directions, *, span=1.0, n: int = 41, ranges=None, labels=None, marks=None,
               accurate: bool | None = None) -> Slice:
    """The loss on a line (one direction) or a plane (two directions) through ``theta``: one vmapped call.

    Args:
        problem: a :class:`landscape.TeacherStudent` with a two-layer student.
        theta: trainable parameter dict of the point theta_0.
        directions: (k, P) array (k = 1 or 2) of directions (:func:`hessian_directions`,
            :func:`random_direction`, :func:`plane_through`).
        span: the grid covers [-span, span] along every direction (ignored where ``ranges`` is given).
        n: grid points per axis (the origin is always one of them).
        ranges: optional ((lo, hi),) or ((lo1, hi1), (lo2, hi2)) coordinate ranges, each containing 0.
        labels: names of the directions (default ``e1``, ``e2``).
        marks: name -> coordinates of points to mark in figures (theta_0 is added as ``"origin"``).
        accurate: evaluate the accurate loss (default: True, the value ``landscape run`` stores).

    Returns:
        :class:`Slice`.

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np, landscape as ls
        >>> from landscape.analysis.paths import loss_slice, random_direction
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=2, width=2), ls.TwoLayer(width=2))
        >>> theta = {"w": jnp.eye(2), "a": jnp.ones(2)}
        >>> s = loss_slice(problem, theta, random_direction(theta, key=jax.random.key(0))[None], n=5)
        >>> s.loss.shape, s.origin, s.origin_loss == float(problem.loss_accurate(theta))
        ((5,), (2,), True)
    """
    accurate = True if accurate is None else bool(accurate)
    dirs = np.atleast_2d(np.asarray(directions, float))
    k = dirs.shape[0]
    if k not in (1, 2):
        raise ValueError(f"a slice takes one or two directions, got {k}")
    x0 = ravel_pytree(theta)[0]
    if dirs.shape[1] != x0.shape[0]:
        raise ValueError(f"directions have length {dirs.shape[1]} but theta has {x0.shape[0]} trainable parameters")
    if not np.all(np.isfinite(dirs)):
        raise ValueError("slice directions must be finite")
    ranges = ranges if ranges is not None else [(-float(span), float(span))] * k
    if len(ranges) != k:
        raise ValueError(f"ranges has {len(ranges)} entries for {k} directions")
    axes = [grid_axis(float(lo), float(hi), int(n)) for lo, hi in ranges]
    mesh = np.meshgrid(*[a for a, _ in axes], indexing="ij")
    coords = np.stack([m.ravel() for m in mesh], axis=1)
    all_marks = {"origin": (0.0,) * k, **({} if marks is None else {kk: tuple(float(c) for c in v)
                                                                    for kk, v in marks.items()})}
    if any(len(v) != k for v in all_marks.values()):
        raise ValueError(f"marks need {k} coordinates each")
    extra = np.array(list(all_marks.values()), float).reshape(-1, k)
    # grid and marked points in one vmapped call, padded to a power of two (>= 64) so that slices of similar
    # sizes share one compilation
    pts = np.concatenate([coords, extra])
    size = max(64, 1 << int(np.ceil(np.log2(pts.shape[0]))))
    pts = np.concatenate([pts, np.zeros((size - pts.shape[0], k))])
    vals = np.asarray(_grid_loss(problem, theta, jnp.asarray(dirs, x0.dtype), jnp.asarray(pts, x0.dtype), accurate),
                      float)[:coords.shape[0] + extra.shape[0]]
    mark_loss = dict(zip(all_marks, vals[coords.shape[0]:].tolist(), strict=True))
    vals = vals[:coords.shape[0]].reshape(tuple(len(a) for a, _ in axes))
    origin = tuple(i for _, i in axes)
    labels = tuple(labels) if labels is not None else tuple(f"e{i + 1}" for i in range(k))
    return Slice(alphas=axes[0][0], betas=axes[1][0] if k == 2 else None, loss=vals, origin=origin,
                 origin_loss=float(vals[origin]), directions=dirs, labels=labels, marks=all_marks,
                 mark_loss=mark_loss, accurate=accurate)
