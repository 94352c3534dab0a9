"""Losses of a teacher-student problem, as strategy objects: the exact population loss and a finite-sample loss.

    L(theta) = 1/2 E[(f(x; theta) - y(x))^2]

- :class:`PopulationLoss`: x ~ N(0, I_d) in closed form (:mod:`landscape.problem.population`): exact kernels
  where the activation has one, else 2-D Gaussian quadrature with ``quadrature_order`` nodes per dimension
  (None: the activation's default). Two-layer nets only. Its ``accurate`` value comes from the residual rewriting
  of :mod:`landscape.problem.accurate_loss` (about 1e-31 instead of rounding noise at a global minimum).
- :class:`SampleLoss`: the mean over n inputs ``x`` (n, d) with labels ``y`` (n,); ``y`` None means the teacher
  labels them when the problem is built. :meth:`SampleLoss.gaussian` draws x ~ N(0, I_d).

Both are equinox Modules: sample arrays are leaves (traced), the quadrature order is static.

Example:
    >>> import jax, landscape as ls
    >>> loss = ls.SampleLoss.gaussian(n=100, d=4, key=jax.random.key(0))
    >>> loss.x.shape
    (100, 4)
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from .accurate_loss import population_loss_accurate
from .population import population_loss

__all__ = ["AbstractLoss", "PopulationLoss", "SampleLoss"]


class AbstractLoss(eqx.Module):
    """How the squared loss of one student against its teacher is evaluated."""

    @abc.abstractmethod
    def value(self, problem, params):
        """1/2 E[(f - y)^2] at the full student parameters ``params`` (frozen entries merged in); a scalar."""

    def accurate(self, problem, params):
        """The same value to full relative accuracy near zero (for reporting and certification)."""
        return self.value(problem, params)

    def labelled(self, teacher) -> AbstractLoss:
        """This loss with labels filled in from ``teacher`` where it needs them (sample losses)."""
        return self

    def check(self, student, teacher) -> None:
        """Raise ``ValueError`` naming the fix if this loss cannot evaluate ``student`` against ``teacher``."""


class PopulationLoss(AbstractLoss):
    """Exact loss for x ~ N(0, I_d); see the module docstring. ``quadrature_order`` is static (None: automatic)."""

    quadrature_order: int | None = eqx.field(static=True, default=None)

    def value(self, problem, params):
        return population_loss(problem.student, params, problem.teacher.network, problem.teacher.params,
                               order=self.quadrature_order)

    def accurate(self, problem, params):
        return population_loss_accurate(problem.student, params, problem.teacher.network, problem.teacher.params,
                                        order=self.quadrature_order)

    def check(self, student, teacher) -> None:
        from .networks import TwoLayer

        if not isinstance(student, TwoLayer) or teacher.hidden_widths:
            raise ValueError("PopulationLoss supports two-layer nets only; use SampleLoss for deep nets")
        act = student.activation
        if not act.smooth and (student.bias or teacher.bias or not act.has_closed_form):
            raise ValueError(f"PopulationLoss with activation {act.label!r} is exact only without biases and for "
                             "relu, leaky_relu, erf or a smooth activation; use SampleLoss or drop the biases")


class SampleLoss(AbstractLoss):
    """Mean squared loss over a finite sample: inputs ``x`` (n, d), labels ``y`` (n,) or None (teacher labels)."""

    x: jax.Array
    y: jax.Array | None = None

    @classmethod
    def gaussian(cls, n: int, d: int, *, key) -> SampleLoss:
        """n i.i.d. inputs x ~ N(0, I_d) drawn from ``key``, labelled by the teacher."""
        return cls(jax.random.normal(key, (n, d)))

    def value(self, problem, params):
        pred = jax.vmap(lambda x: problem.student.apply(params, x))(self.x)
        return 0.5 * jnp.mean((pred - self.y) ** 2)

    def labelled(self, teacher) -> SampleLoss:
        if self.y is not None:
            return self
        return SampleLoss(self.x, jax.vmap(teacher)(self.x))

    def check(self, student, teacher) -> None:
        if self.x.ndim != 2 or self.x.shape[1] != student.input_dim:
            raise ValueError(f"SampleLoss.x has shape {tuple(self.x.shape)}; the problem needs "
                             f"(n, {student.input_dim})")
        if self.y is not None and self.y.shape != (self.x.shape[0],):
            raise ValueError(f"SampleLoss.y has shape {tuple(self.y.shape)}; it needs ({self.x.shape[0]},)")
