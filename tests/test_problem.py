"""Activations (declared symmetry facts checked numerically), networks, teachers and the Problem loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape  # noqa: F401  (float64)
from landscape.config import ACTIVATION_NAMES, build_problem, config_from_dict
from landscape.config import parse_activation as get_activation

NAMES = ["relu", "leaky_relu(0.1)", "relu^2", "softplus", "tanh", "erf", "sigmoid", "sigmoid4_softplus"]
Z = jnp.linspace(-3.0, 3.0, 61)


@pytest.mark.parametrize("name", NAMES)
def test_activation_facts_hold_numerically(name):
    act = get_activation(name)
    s = act(Z)
    if act.homogeneity is not None:
        np.testing.assert_allclose(act(2.5 * Z), 2.5**act.homogeneity * s, rtol=1e-14, atol=1e-14)
    else:
        assert not np.allclose(act(2.5 * Z), 2.5 * s)
    assert np.allclose(act(-Z), -s, atol=1e-15) == act.odd
    assert (float(act(jnp.array(0.0))) == 0.0) == act.zero_at_zero
    if act.smooth:  # second derivative exists and matches central differences everywhere on the grid
        d2 = jax.vmap(jax.grad(jax.grad(lambda z: act(z))))(Z)
        fd = (act(Z + 1e-4) - 2 * s + act(Z - 1e-4)) / 1e-8
        np.testing.assert_allclose(d2, fd, atol=1e-5)


def test_activation_names_and_errors():
    assert get_activation("relu^1") == get_activation("relu")
    assert get_activation(" Leaky_ReLU(0.2) ").param == 0.2
    for bad in ("swish", "leaky_relu(1.5)", "relu^0"):
        with pytest.raises(ValueError):
            get_activation(bad)
    assert len(ACTIVATION_NAMES) == 8


def _cfg(**problem):
    return config_from_dict(
        {"problem": {"input_dim": 4, **problem}, "teacher": {"width": 2}, "student": {"width": 3}}
    )


def test_network_apply_and_orthonormal_teacher():
    P = build_problem(_cfg(activation="tanh"))
    np.testing.assert_array_equal(P.teacher_params["w"], jnp.eye(4)[:2])
    theta = {"w": jnp.arange(12.0).reshape(3, 4) / 10, "a": jnp.array([1.0, -2.0, 0.5])}
    x = jnp.array([0.3, -1.0, 2.0, 0.1])
    assert float(P.predict(theta, x)) == pytest.approx(float(theta["a"] @ jnp.tanh(theta["w"] @ x)), rel=1e-15)


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_population_and_sample_problems_agree(activation):
    """The population Problem equals the large-sample Problem up to Monte-Carlo error (same teacher, same theta)."""
    pop = build_problem(_cfg(activation=activation))
    smp = build_problem(_cfg(activation=activation, loss="sample", n_samples=400_000))
    theta = {"w": jax.random.normal(jax.random.PRNGKey(2), (3, 4)) / 2, "a": jnp.array([0.5, -1.0, 0.8])}
    err = jax.vmap(lambda xi: smp.predict(theta, xi))(smp.x) - smp.y
    se = float(jnp.std(0.5 * err**2)) / np.sqrt(err.size)
    assert abs(float(pop.loss(theta)) - float(smp.loss(theta))) < 5 * se


def test_frozen_output_weights_merge():
    cfg = config_from_dict({"problem": {"input_dim": 4}, "teacher": {"width": 2},
                            "student": {"width": 2, "train_output_weights": False}})
    P = build_problem(cfg)
    assert set(P.trainable_shapes) == {"w"}
    theta = {"w": P.teacher_params["w"]}
    assert abs(float(P.loss(theta))) < 1e-15
    assert float(P.loss({"w": 1.1 * theta["w"]})) > 0
