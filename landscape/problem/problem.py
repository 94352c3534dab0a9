"""A teacher-student problem and its loss for one student.

    L(theta) = 1/2 E[(f(x; theta) - y(x))^2],   y = teacher,   f = student

over a finite sample or over x ~ N(0, I_d) in closed form (:mod:`landscape.problem.losses`).

:class:`TeacherStudent` is an equinox Module: the student network is static (it fixes shapes and defines a
compilation group), while the teacher's parameters, frozen student parameters and sample arrays are leaves, so
problems that differ only in values reuse one compilation. The trainable parameters ``theta`` are the student's
parameter dict without its frozen entries (without ``"a"`` when output weights are fixed);
:meth:`TeacherStudent.full_params` merges them back. Every method handles ONE student; vmap outside.

Example:
    >>> import jax, landscape as ls
    >>> problem = ls.TeacherStudent(teacher=ls.Teacher.orthonormal(d=3, width=2),
    ...                             student=ls.TwoLayer(width=2, activation=ls.ReLU()), loss=ls.PopulationLoss())
    >>> theta = {"w": jax.numpy.eye(3)[:2], "a": jax.numpy.ones(2)}
    >>> float(problem.loss(theta))  # doctest: +SKIP
    0.0
    >>> float(jax.jit(ls.problem.loss)(problem, theta))  # the problem is a pytree argument; compiled once
    0.0
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp

from .losses import AbstractLoss, PopulationLoss, SampleLoss
from .networks import Network
from .teachers import Teacher, output_weight_values

__all__ = ["TeacherStudent", "Problem", "loss", "loss_accurate"]


class TeacherStudent(eqx.Module):
    """A student network learning a teacher under the squared loss; see the module docstring.

        L(theta) = 1/2 E[(f(x; theta) - y(x))^2],   theta = the student's trainable parameters

    The student (architecture) is static; teacher parameters, frozen output weights and sample arrays are traced.
    Every method handles ONE parameter set ``theta``; batch with ``jax.vmap(problem.loss)``.

    Args:
        teacher: a :class:`Teacher` (without an activation it takes the student's).
        student: a :class:`landscape.TwoLayer` or :class:`landscape.MLP`; its ``input_dim`` may be left out.
        loss: :class:`PopulationLoss` (default) or :class:`SampleLoss` (labelled by the teacher if it has no y).
        output_weights: None to train the output weights; otherwise they are frozen to ``"teacher"`` (the
            teacher's, or their common value when they are all equal), a number or an array of the student width.

    Raises:
        ValueError: naming the argument and the fix, for incompatible sizes or a loss that cannot be evaluated.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> problem.trainable_shapes, problem.loss_kind
        ({'w': (2, 3), 'a': (2,)}, 'population')
        >>> theta = {"w": jnp.eye(3)[:2], "a": jnp.ones(2)}  # the student equals the teacher
        >>> float(jax.jit(ls.problem.loss)(problem, theta))  # problem.loss(theta), compiled
        0.0
        >>> fixed = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=3),
        ...                           output_weights="teacher")  # a frozen to 1: trains w only
        >>> fixed.trainable_shapes
        {'w': (3, 3)}

    References:
        Şimşek et al., `Geometry of the Loss Landscape in Overparameterized Neural Networks: Symmetries and
        Invariances <https://arxiv.org/abs/2105.12221>`_, ICML 2021.
    """

    teacher: Teacher
    student: Network = eqx.field(static=True)
    objective: AbstractLoss
    frozen: dict

    def __init__(self, teacher: Teacher, student: Network, loss: AbstractLoss | None = None, *,
                 output_weights=None):
        loss = PopulationLoss() if loss is None else loss
        if teacher.activation is None:
            teacher = teacher.with_activation(student.activation)
        d = teacher.input_dim
        if student.input_dim is None:
            student = dataclasses.replace(student, input_dim=d)
        elif student.input_dim != d:
            raise ValueError(f"student input_dim = {student.input_dim} but the teacher has d = {d}")
        loss.check(student, teacher)
        self.teacher = teacher
        self.student = student
        self.objective = loss.labelled(teacher)
        self.frozen = {} if output_weights is None else {"a": _frozen_output_weights(output_weights, student.width,
                                                                                    teacher.params["a"])}

    def with_student(self, student: Network) -> TeacherStudent:
        """The same teacher and loss with another student network (e.g. another width), output weights trained."""
        return TeacherStudent(self.teacher, student, self.objective)

    def full_params(self, theta):
        """Student parameters with the frozen entries merged in."""
        return {**theta, **self.frozen}

    def predict(self, theta, x):
        """Student output f(x; theta) for one input x of shape (d,)."""
        return self.student.apply(self.full_params(theta), x)

    def loss(self, theta):
        """1/2 E[(f - y)^2] for one student parameter set ``theta``; a scalar (pure, jittable, vmappable).

        Args:
            theta: trainable parameter dict with the shapes :attr:`trainable_shapes`.

        Returns:
            The loss, a float64 scalar.
        """
        return self.objective.value(self, self.full_params(theta))

    def value_and_grad(self, theta):
        """(L(theta), grad L(theta)) for one student, like ``jax.value_and_grad(self.loss)(theta)``.

        In closed form where the loss has one (:meth:`AbstractLoss.value_and_grad`: the population loss of relu and
        leaky relu nets without biases, about 2x faster than reverse mode), else by autodiff. Gradient flows and
        optimisers use this; certification and Hessians differentiate :meth:`loss` itself.
        """
        closed = self.objective.value_and_grad(self, self.full_params(theta), tuple(theta))
        return jax.value_and_grad(self.loss)(theta) if closed is None else closed

    def loss_accurate(self, theta):
        """The loss to full relative accuracy near zero (population: residual form; sample: the mean itself)."""
        return self.objective.accurate(self, self.full_params(theta))

    @property
    def trainable_shapes(self) -> dict:
        """Shapes of the trainable parameter dict (the full shapes without frozen entries)."""
        return {k: v for k, v in self.student.shapes().items() if k not in self.frozen}

    @property
    def teacher_params(self) -> dict:
        """The teacher's full parameter dict."""
        return self.teacher.params

    @property
    def loss_kind(self) -> str:
        """``"population"`` or ``"sample"``."""
        return "sample" if isinstance(self.objective, SampleLoss) else "population"

    @property
    def x(self):
        """Sample inputs (n, d), or None for the population loss."""
        return getattr(self.objective, "x", None)

    @property
    def y(self):
        """Sample labels (n,), or None for the population loss."""
        return getattr(self.objective, "y", None)


Problem = TeacherStudent
"""The problem type every layer above takes (one class today: teacher-student)."""


def loss(problem: TeacherStudent, theta):
    """The training loss of ``problem`` at the trainable parameters ``theta`` (pure, jittable, vmappable)."""
    return problem.loss(theta)


def loss_accurate(problem: TeacherStudent, theta):
    """:meth:`TeacherStudent.loss_accurate` as a function."""
    return problem.loss_accurate(theta)


def _frozen_output_weights(spec, width: int, teacher_a) -> jax.Array:
    """Values of frozen student output weights: the teacher's (``"teacher"``), a number, or an array.

    ``"teacher"`` copies the teacher's weights when the widths agree, or their common value when all teacher
    weights are equal (e.g. all ones for the orthonormal teacher); otherwise the values must be given.
    """
    if not (isinstance(spec, str) and spec == "teacher"):
        return output_weight_values(spec, width, None)
    if teacher_a.shape[0] == width:
        return teacher_a
    if bool(jnp.all(teacher_a == teacher_a[0])):
        return jnp.full(width, teacher_a[0])
    raise ValueError("output_weights = \"teacher\" needs equal widths or equal teacher output weights; give the "
                     "frozen output weights as a number or an array")
