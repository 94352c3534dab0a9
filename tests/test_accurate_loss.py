"""The residual form of the population loss equals the kernel form and stays accurate near zero loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landscape.config import parse_activation as get_activation
from landscape.problem.accurate_loss import population_loss_accurate
from landscape.problem.networks import TwoLayer
from landscape.problem.population import population_loss

D = 4


def _setup(name):
    act = get_activation(name)
    student, teacher = TwoLayer(5, act, input_dim=D), TwoLayer(3, act, input_dim=D)
    tp = {"w": jax.random.normal(jax.random.PRNGKey(1), (3, D)) / 2, "a": jnp.array([1.0, -0.5, 0.7])}
    # a global minimum with a split neuron (0.3 / 0.7 of teacher 0), a zero-outgoing-weight neuron
    w = jnp.stack([tp["w"][0], tp["w"][0], tp["w"][1], tp["w"][2], jnp.ones(D)])
    a = jnp.array([0.3 * tp["a"][0], 0.7 * tp["a"][0], tp["a"][1], tp["a"][2], 0.0])
    return student, teacher, tp, w, a


@pytest.mark.parametrize("name", ["relu", "leaky_relu(0.2)", "erf"])
def test_equals_kernel_form_at_generic_points(name):
    student, teacher, tp, _, _ = _setup(name)
    p = {"w": jax.random.normal(jax.random.PRNGKey(2), (5, D)), "a": jax.random.normal(jax.random.PRNGKey(3), (5,))}
    direct = jax.jit(lambda p: population_loss(student, p, teacher, tp))(p)
    acc = jax.jit(lambda p: population_loss_accurate(student, p, teacher, tp))(p)
    assert abs(direct - acc) <= 1e-13 * abs(direct)


@pytest.mark.parametrize("name", ["relu", "erf"])
def test_quadratic_scaling_down_to_1e_30(name):
    student, teacher, tp, w, a = _setup(name)
    dw = jax.random.normal(jax.random.PRNGKey(5), w.shape)
    f = jax.jit(lambda p: population_loss_accurate(student, p, teacher, tp))
    assert float(f({"w": w, "a": a})) == 0.0
    ref = float(f({"w": w + 1e-3 * dw, "a": a}))
    direct = jax.jit(lambda p: population_loss(student, p, teacher, tp))
    assert abs(ref - float(direct({"w": w + 1e-3 * dw, "a": a}))) < 1e-12
    for eps in (1e-6, 1e-9, 1e-13):
        val = float(f({"w": w + eps * dw, "a": a}))
        # L(eps) = c eps^2 (1 + O(eps)): the ratio to the eps = 1e-3 value scales exactly quadratically
        assert val > 0 and np.isclose(val / ref, (eps / 1e-3) ** 2, rtol=2e-3)


def test_relu_rescaled_neuron_is_matched():
    # positive homogeneity: w = 2 v, a = c / 2 realises the teacher neuron exactly
    student, teacher, tp, w, a = _setup("relu")
    w = w.at[2].multiply(2.0)
    a = a.at[2].divide(2.0)
    val = float(jax.jit(lambda p: population_loss_accurate(student, p, teacher, tp))({"w": w, "a": a}))
    assert 0.0 <= val < 1e-30


def test_erf_sign_flipped_minima_are_accurate_and_nonnegative():
    """Regression: odd activations have the sign-flip symmetry (w, a) -> (-w, -a); a student neuron at -v_j was not
    matched, so the kernel form's cancellation leaked out (-8.3e-17 reported as an erf loss level)."""
    import landscape as ls

    p = ls.TeacherStudent(ls.Teacher.gaussian(d=3, width=2, key=jax.random.key(1)),
                          ls.TwoLayer(width=2, activation=ls.Erf()))
    V, C = p.teacher.params["w"], p.teacher.params["a"]
    values = []
    for signs in ([1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0]):
        s = jnp.asarray(signs)
        values.append(float(p.loss_accurate({"w": s[:, None] * V * (1 + 1e-9), "a": s * C})))
    assert min(values) > 0
    np.testing.assert_allclose(values, values[0], rtol=1e-6)
