"""A teacher-student problem and its loss for one student.

:class:`Problem` is an equinox Module: networks and the loss kind are static (they fix shapes and define a
compilation group), while teacher parameters, frozen student parameters and data are array leaves, so problems
that differ only in values reuse one compilation.

The trainable parameters ``theta`` are the student's parameter dict without its frozen entries (e.g. without
``"a"`` when output weights are fixed); :meth:`Problem.full_params` merges them back.

    L(theta) = 1/2 E[(f(x; theta) - y(x))^2]

over the sample (mean over n inputs) or over x ~ N(0, I_d) in closed form (:mod:`landscape.problem.population`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .accurate_loss import population_loss_accurate
from .activations import get_activation
from .data import gaussian_inputs, load_inputs
from .networks import MLP, Network, TwoLayerNet
from .population import population_loss
from .teachers import make_teacher, output_weight_values

__all__ = ["Problem", "loss", "loss_accurate", "build_problem"]


class Problem(eqx.Module):
    """Teacher, student architecture and loss. See the module docstring."""

    student: Network = eqx.field(static=True)
    teacher: Network = eqx.field(static=True)
    loss_kind: str = eqx.field(static=True)
    quadrature_order: int | None = eqx.field(static=True)  # None: kernels.default_order
    teacher_params: dict
    frozen: dict
    x: jax.Array | None = None
    y: jax.Array | None = None

    def full_params(self, theta):
        """Student parameters with the frozen entries merged in."""
        return {**theta, **self.frozen}

    def predict(self, theta, x):
        """Student output f(x; theta) for one input x of shape (d,)."""
        return self.student.apply(self.full_params(theta), x)

    def loss(self, theta):
        """1/2 E[(f - y)^2] for one student parameter set ``theta``; a scalar."""
        return loss(self, theta)

    @property
    def trainable_shapes(self) -> dict:
        """Shapes of the trainable parameter dict (the full shapes without frozen entries)."""
        return {k: v for k, v in self.student.shapes().items() if k not in self.frozen}


def loss(problem: Problem, theta):
    """The training loss of ``problem`` at the trainable parameters ``theta`` (pure, jittable, vmappable)."""
    params = problem.full_params(theta)
    if problem.loss_kind == "population":
        return population_loss(
            problem.student, params, problem.teacher, problem.teacher_params, order=problem.quadrature_order
        )
    pred = jax.vmap(lambda x: problem.student.apply(params, x))(problem.x)
    return 0.5 * jnp.mean((pred - problem.y) ** 2)


def loss_accurate(problem: Problem, theta):
    """The same loss evaluated to full relative accuracy near zero (for reporting and certification).

    The population kernel form cancels O(1) terms and returns rounding noise (~1e-16, possibly negative) at a
    global minimum; :func:`landscape.problem.accurate_loss.population_loss_accurate` rewrites it as a sum of small
    terms. The sample loss is a mean of squared residuals and is accurate already.
    """
    if problem.loss_kind == "population":
        return population_loss_accurate(
            problem.student, problem.full_params(theta), problem.teacher, problem.teacher_params,
            order=problem.quadrature_order,
        )
    return loss(problem, theta)


def build_problem(cfg) -> Problem:
    """Build the :class:`Problem` described by a :class:`landscape.config.Config`.

    Randomness: the teacher uses ``teacher.seed``, the sample ``problem.data_seed``; both are independent of the
    initialisation seed, so a sweep over initialisations shares one problem.
    """
    p, t, s = cfg.problem, cfg.teacher, cfg.student
    act = get_activation(p.activation)
    teacher, teacher_params = make_teacher(
        t.kind,
        p.input_dim,
        t.width,
        act,
        key=jax.random.PRNGKey(t.seed),
        output_weights=t.output_weights,
        bias=t.bias,
        hidden_widths=tuple(t.hidden_widths),
        file=t.file,
    )
    if len(s.hidden_widths) > 1:
        student = MLP(p.input_dim, tuple(s.hidden_widths), act, s.bias)
    else:
        student = TwoLayerNet(p.input_dim, s.width, act, s.bias)
    frozen = {}
    if not s.train_output_weights:
        frozen["a"] = frozen_output_weights(s.output_weights, s.width, teacher_params["a"])
    x = y = None
    if p.loss == "sample":
        if p.data_file:
            x, y = load_inputs(p.data_file, p.input_dim)
        else:
            x = gaussian_inputs(jax.random.PRNGKey(p.data_seed), p.n_samples, p.input_dim)
        if y is None:
            y = jax.vmap(lambda xi: teacher.apply(teacher_params, xi))(x)
    return Problem(
        student=student,
        teacher=teacher,
        loss_kind=p.loss,
        quadrature_order=p.quadrature_order or None,
        teacher_params=teacher_params,
        frozen=frozen,
        x=x,
        y=y,
    )


def frozen_output_weights(spec, width: int, teacher_a) -> jax.Array:
    """Values of frozen student output weights: the teacher's (``"teacher"``), a number, or a list.

    ``"teacher"`` copies the teacher's weights when the widths agree, or their common value when all teacher
    weights are equal (e.g. all ones for the orthonormal teacher); otherwise the values must be given.
    """
    if spec != "teacher":
        return output_weight_values(spec, width, None)
    if teacher_a.shape[0] == width:
        return teacher_a
    if bool(jnp.all(teacher_a == teacher_a[0])):
        return jnp.full(width, teacher_a[0])
    raise ValueError(
        "student.output_weights = \"teacher\" needs equal widths or equal teacher output weights; give "
        "student.output_weights as a number or a list"
    )
