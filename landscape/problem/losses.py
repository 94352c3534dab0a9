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
from .population import has_closed_form_gradient, population_loss, population_value_and_grad

__all__ = ["AbstractLoss", "PopulationLoss", "SampleLoss"]


class AbstractLoss(eqx.Module):
    """How the squared loss of one student against its teacher is evaluated.

    L(theta) = 1/2 E[(f(x; theta) - y(x))^2] for ONE student: :meth:`value` returns a scalar and is pure JAX
    (jittable, differentiable, vmappable over parameters). Subclasses are equinox Modules: arrays are traced leaves,
    settings that change the computation are static fields.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> class Zero(ls.AbstractLoss):  # a toy loss: 0 for every student
        ...     def value(self, problem, params):
        ...         return jnp.zeros(())
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2), loss=Zero())
        >>> float(problem.loss({"w": jnp.ones((2, 3)), "a": jnp.ones(2)}))
        0.0
    """

    @abc.abstractmethod
    def value(self, problem, params):
        """1/2 E[(f - y)^2] at the full student parameters ``params`` (frozen entries merged in); a scalar."""

    def accurate(self, problem, params):
        """The same value to full relative accuracy near zero (for reporting and certification)."""
        return self.value(problem, params)

    def value_and_grad(self, problem, params, wrt):
        """(value, {name: gradient for name in wrt}) in closed form, or None when this loss has none (then
        :meth:`landscape.TeacherStudent.value_and_grad` differentiates :meth:`value` by autodiff)."""
        return None

    def labelled(self, teacher) -> AbstractLoss:
        """This loss with labels filled in from ``teacher`` where it needs them (sample losses)."""
        return self

    def check(self, student, teacher) -> None:
        """Raise ``ValueError`` naming the fix if this loss cannot evaluate ``student`` against ``teacher``."""


class PopulationLoss(AbstractLoss):
    """Exact loss for x ~ N(0, I_d); see the module docstring. ``quadrature_order`` is static (None: automatic).

    For a two-layer student (W (m, d), a (m,)) and teacher (V (r*, d), c (r*,)) without biases,

        L = 1/2 (a^T K(W, W) a - 2 a^T K(W, V) c + c^T K(V, V) c),   K(W, V)_ij = E[sigma(w_i . x) sigma(v_j . x)]

    with the closed-form kernels of ReLU and relu^2, relu^3 (arc-cosine, Cho & Saul 2009), leaky ReLU and erf
    (Williams 1997), else
    2-D Gaussian quadrature whose derivatives follow Price's theorem (Price 1958). Gradients and Hessians stay
    finite at parallel, antiparallel and zero neurons.

    Args:
        quadrature_order: nodes per dimension for quadrature (static; None: the activation's default).

    Raises:
        ValueError: (when the problem is built) for deep nets, or a non-smooth activation without a closed form
            or with biases.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             loss=ls.PopulationLoss())
        >>> theta = {"w": jnp.eye(3)[:2], "a": jnp.zeros(2)}  # f = 0: L = 1/2 c^T K(V, V) c = 1/2 + 1/(2 pi)
        >>> round(float(jax.jit(ls.problem.loss)(problem, theta)), 12)  # problem.loss(theta), compiled
        0.659154943092

    References:
        Cho & Saul, Kernel Methods for Deep Learning, NeurIPS 2009.

        Williams, Computing with Infinite Networks, NeurIPS 1997.

        Price, A Useful Theorem for Nonlinear Devices Having Gaussian Inputs, IRE Trans. Inf. Theory 4, 1958.
    """

    quadrature_order: int | None = eqx.field(static=True, default=None)

    def value(self, problem, params):
        return population_loss(problem.student, params, problem.teacher.network, problem.teacher.params,
                               order=self.quadrature_order)

    def value_and_grad(self, problem, params, wrt):
        student, teacher = problem.student, problem.teacher.network
        if not has_closed_form_gradient(student, teacher):
            return None
        return population_value_and_grad(student, params, teacher, problem.teacher.params, wrt)

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
                             "relu, relu^2, relu^3, leaky_relu, erf or a smooth activation; use SampleLoss or drop "
                             "the biases")


class SampleLoss(AbstractLoss):
    """Mean squared loss over a finite sample: inputs ``x`` (n, d), labels ``y`` (n,) or None (teacher labels).

        L(theta) = 1/(2n) sum_i (f(x_i; theta) - y_i)^2

    ``x`` and ``y`` are traced leaves (a new sample of the same shape reuses the compilation); works for two-layer
    nets and deep MLPs, with or without biases.

    Args:
        x: inputs, shape (n, d).
        y: labels, shape (n,), or None to let the teacher label ``x`` when the problem is built.

    Raises:
        ValueError: (when the problem is built) if ``x`` is not (n, d) for the student's d or ``y`` is not (n,).

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> x = jnp.array([[1.0, 2.0, 0.0], [-1.0, 0.0, 3.0]])
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             loss=ls.SampleLoss(x))
        >>> problem.y.tolist()  # relu(x_1) + relu(x_2) per row
        [3.0, 0.0]
        >>> float(problem.loss({"w": jnp.eye(3)[:2], "a": jnp.zeros(2)}))  # 1/(2 * 2) * (3^2 + 0^2)
        2.25
    """

    x: jax.Array
    y: jax.Array | None = None

    @classmethod
    def gaussian(cls, n: int, d: int, *, key) -> SampleLoss:
        """n i.i.d. inputs x ~ N(0, I_d) drawn from ``key``, labelled by the teacher.

        Args:
            n: sample size.
            d: input dimension.
            key: PRNG key (keyword-only).

        Returns:
            A :class:`SampleLoss` with ``x`` of shape (n, d) and ``y`` None.

        Example:
            >>> import jax, landscape as ls
            >>> ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)).x.shape
            (16, 3)
        """
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
