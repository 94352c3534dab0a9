"""Looking at the landscape: slices through points, zero-loss paths between global minima, saddles between minima.

- :mod:`.slices`: the loss on a line or plane through a point along Hessian eigenvectors, random (optionally
  filter-normalised, Li et al. 2018) directions, or the plane through three points; one vmapped call per grid;
- :mod:`.zero_loss_path`: an explicit piecewise-linear path inside the global-minima manifold of a width
  m >= r* + 1 student (split-ratio, zero-output and dead-neuron moves), certified densely with the accurate loss
  (Şimşek et al. 2021; README science section 1);
- :mod:`.neb`: nudged elastic band with a climbing image between two minima, its top image polished into a
  certified saddle, classified and identified by the symmetry analyzer (Henkelman et al. 2000).

Example:
    >>> import jax.numpy as jnp, landscape as ls
    >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=2, width=2), ls.TwoLayer(width=3))
    >>> a = {"w": jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "a": jnp.array([1.0, 1.0, 0.0])}
    >>> b = {"w": jnp.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), "a": jnp.array([1.0, 1.0, 0.0])}
    >>> path = ls.zero_loss_path(problem, a, b)  # doctest: +SKIP
    >>> path.certified, path.max_loss <= 1e-25  # doctest: +SKIP
    (True, True)
"""

from .neb import NEB, NEBResult, Saddle, certify_saddle, neb
from .slices import HESSIAN_WHICH, Slice, grid_axis, hessian_directions, loss_slice, plane_through, random_direction
from .zero_loss_path import NotOnManifold, ZeroLossPath, global_structure, zero_loss_path

__all__ = ["NEB", "NEBResult", "Saddle", "certify_saddle", "neb", "HESSIAN_WHICH", "Slice", "grid_axis",
           "hessian_directions", "loss_slice", "plane_through", "random_direction", "NotOnManifold", "ZeroLossPath",
           "global_structure", "zero_loss_path"]
