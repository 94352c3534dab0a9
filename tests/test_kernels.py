"""Population kernels k(w, v) = E[sigma(w.x + b) sigma(v.x + c)]: closed forms and quadrature against Monte-Carlo,
an independent fine-grid reference and each other; derivatives against finite differences at special points."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sps

import landscape  # noqa: F401  (float64)
from landscape.config import parse_activation as get_activation
from landscape.problem.activations import erf_kernel, leaky_relu_kernel, relu_kernel
from landscape.problem.kernels import DEFAULT_ORDER, gauss_kernel, pair_kernel

D = 3
NP_ACTS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu(0.1)": lambda z: np.where(z > 0, z, 0.1 * z),
    "erf": sps.erf,
    "softplus": lambda z: np.logaddexp(0.0, z),
    "tanh": np.tanh,
    "sigmoid": sps.expit,
    "sigmoid4_softplus": lambda z: sps.expit(4 * z) + np.logaddexp(0.0, z),
}


def _pairs():
    """(w, v) pairs: generic, obtuse, orthogonal, parallel, antiparallel, coincident; norms 0.5 .. 2."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=D)
    w *= 1.3 / np.linalg.norm(w)
    u = rng.normal(size=D)
    perp = u - (u @ w) / (w @ w) * w
    perp *= 0.8 / np.linalg.norm(perp)
    return {
        "generic": (w, 0.5 * w + perp),
        "obtuse": (w, -0.9 * w + perp),
        "orthogonal": (w, 2.0 * perp),
        "parallel": (w, 1.5 * w),
        "antiparallel": (w, -0.4 * w),
        "coincident": (w, w.copy()),
    }


PAIRS = _pairs()


@pytest.fixture(scope="module")
def mc_x():
    return np.random.default_rng(0).normal(size=(2_000_000, D))


def _mc(sigma, x, w, b, v, c):
    """Monte-Carlo mean and standard error of sigma(w.x + b) sigma(v.x + c)."""
    s = sigma(x @ w + b) * sigma(x @ v + c)
    return s.mean(), s.std() / math.sqrt(len(s))


@pytest.mark.parametrize("name", ["relu", "leaky_relu(0.1)", "erf"])
def test_closed_forms_match_monte_carlo(mc_x, name):
    act = get_activation(name)
    for label, (w, v) in PAIRS.items():
        k = float(pair_kernel(act, jnp.array(w), 0.0, jnp.array(v), 0.0))
        mean, se = _mc(NP_ACTS[name], mc_x, w, 0.0, v, 0.0)
        assert abs(k - mean) < 5 * se + 1e-12, (name, label, k, mean, se)


@pytest.mark.parametrize("name", ["softplus", "tanh", "sigmoid", "sigmoid4_softplus", "erf"])
@pytest.mark.parametrize("bias", [False, True])
def test_quadrature_matches_monte_carlo(mc_x, name, bias):
    act = get_activation(name)
    b, c = (0.4, -0.7) if bias else (0.0, 0.0)
    for label in ("generic", "obtuse", "parallel", "antiparallel"):
        w, v = PAIRS[label]
        k = float(gauss_kernel(act, jnp.array(w), b, jnp.array(v), c))
        mean, se = _mc(NP_ACTS[name], mc_x, w, b, v, c)
        assert abs(k - mean) < 5 * se + 1e-12, (name, label, k, mean, se)


def test_quadrature_matches_erf_closed_form():
    act = get_activation("erf")
    rng = np.random.default_rng(1)
    for label, (w, v) in PAIRS.items():
        for scale in (0.3, 1.0, 1.5):
            wj, vj = jnp.array(scale * w), jnp.array(scale * v)
            exact = float(erf_kernel(wj, vj))
            assert abs(float(gauss_kernel(act, wj, 0.0, vj, 0.0)) - exact) < 1e-13, (label, scale)
    w = jnp.array(rng.normal(size=D))
    assert abs(float(gauss_kernel(act, w, 0.0, jnp.zeros(D), 0.0))) < 1e-15
    assert float(erf_kernel(w, jnp.zeros(D))) == 0.0


def _reference(sigma, mu1, mu2, c11, c12, c22, h=0.005, half_width=9.0):
    """E[sigma(u) sigma(v)] on a fine grid in (u, v | u): an independent 2-D trapezoidal reference (numpy)."""
    z = np.arange(-half_width, half_width + h / 2, h)
    wz = np.exp(-z * z / 2)
    wz /= wz.sum()
    s1, beta = math.sqrt(c11), c12 / c11
    s2 = math.sqrt(max(c22 - c12 * c12 / c11, 0.0))
    u = mu1 + s1 * z
    total = 0.0
    for i in range(0, len(z), 400):
        ui = u[i : i + 400]
        inner = sigma(mu2 + beta * (ui - mu1)[:, None] + s2 * z[None, :]) @ wz
        total += np.sum(wz[i : i + 400] * sigma(ui) * inner)
    return total


@pytest.mark.parametrize("name", ["tanh", "softplus", "sigmoid4_softplus"])
def test_quadrature_accuracy_at_default_order(name):
    """|w|, |v| = 1.5 with biases: the default order is accurate to ~1e-11 against an independent reference."""
    act = get_activation(name)
    w, v = PAIRS["generic"]
    w, v = 1.5 * w / np.linalg.norm(w), 1.5 * v / np.linalg.norm(v)
    ref = _reference(NP_ACTS[name], 0.3, -0.5, w @ w, w @ v, v @ v)
    k = float(gauss_kernel(act, jnp.array(w), 0.3, jnp.array(v), -0.5, DEFAULT_ORDER))
    assert abs(k - ref) < 1e-10 * max(1.0, abs(ref)), (name, k - ref)


def test_relu_kernel_accurate_at_all_angles():
    """Against the textbook formula in extended precision (np.longdouble), through the small-angle series switch."""
    for theta in (1e-9, 1e-4, 0.0999, 0.1, 0.1001, 0.7, math.pi / 2 - 1e-9, math.pi / 2 + 1e-9, 2.5, math.pi - 1e-6):
        nw, nv = 1.7, 0.6
        w = np.array([nw, 0.0])
        v = np.array([nv * math.cos(theta), nv * math.sin(theta)])
        wl, vl = w.astype(np.longdouble), v.astype(np.longdouble)
        t = np.arctan2(wl[0] * vl[1] - wl[1] * vl[0], wl @ vl)
        exact = nw * nv / (2 * np.pi) * (np.sin(t) + (np.pi - t) * np.cos(t))
        k = float(relu_kernel(jnp.array(w), jnp.array(v)))
        assert abs(k - float(exact)) < 2e-16 * nw * nv, (theta, k, float(exact))


def test_leaky_kernel_reduces_to_relu_and_linear():
    for w, v in PAIRS.values():
        w, v = jnp.array(w), jnp.array(v)
        assert float(leaky_relu_kernel(w, v, 0.0)) == pytest.approx(float(relu_kernel(w, v)), abs=1e-16)
        assert float(leaky_relu_kernel(w, v, 1.0)) == pytest.approx(float(w @ v), abs=1e-15)


# ---------------------------------------------------------------- derivatives of one pair k(w, v) against FD


def _flat_kernel(name, bias):
    act = get_activation(name)
    if bias:
        return lambda x: pair_kernel(act, x[:D], x[2 * D], x[D : 2 * D], x[2 * D + 1], bias=True)
    return lambda x: pair_kernel(act, x[:D], 0.0, x[D:], 0.0)


KERNEL_CASES = [("relu", False), ("leaky_relu(0.1)", False), ("erf", False), ("erf", True), ("softplus", True),
                ("tanh", True), ("sigmoid4_softplus", False)]


def _fd_jac(f, x, h):
    """Central differences of f (jitted, vmapped over the 2n perturbed points) at x; shape f(x).shape + (n,)."""
    e = h * np.eye(x.size)
    out = np.asarray(jax.vmap(f)(jnp.asarray(np.concatenate([x + e, x - e]))))
    return np.moveaxis((out[: x.size] - out[x.size :]) / (2 * h), 0, -1)


@pytest.mark.parametrize("name,bias", KERNEL_CASES)
def test_pair_kernel_derivatives_match_finite_differences(name, bias):
    f = _flat_kernel(name, bias)
    g, hess = jax.jit(jax.grad(f)), jax.jit(jax.hessian(f))
    smooth = get_activation(name).smooth
    cases = {**PAIRS, "zero": (np.zeros(D), PAIRS["generic"][1])} if smooth else PAIRS
    for label, (w, v) in cases.items():
        x = np.concatenate([w, v] + ([np.array([0.3, -0.2])] if bias else []))
        hx = np.asarray(hess(x))
        assert np.all(np.isfinite(hx)), label
        np.testing.assert_allclose(np.asarray(g(x)), _fd_jac(f, x, 1e-6), atol=2e-9, rtol=0, err_msg=label)
        # The ReLU kernel is C^2 only at theta in {0, pi}: there FD of the gradient converges like O(h) to the limit.
        c2_only = name in ("relu", "leaky_relu(0.1)") and label in ("parallel", "antiparallel", "coincident")
        h = 1e-7 if c2_only else 1e-5
        np.testing.assert_allclose(hx, _fd_jac(g, x, h), atol=1e-6 if c2_only else 1e-8, rtol=0, err_msg=label)


def test_relu_kernel_hessian_at_parallel_is_the_limit():
    """At theta = 0 the g-part of the Hessian is exactly 0 and the Hessian is the limit of nearby Hessians."""
    w, _ = PAIRS["generic"]
    f = lambda x: relu_kernel(x[:D], x[D:])
    hess = jax.jit(jax.hessian(f))
    x0 = np.concatenate([w, 1.5 * w])
    rng = np.random.default_rng(5)
    for eps in (1e-4, 1e-6, 1e-8):
        dx = rng.normal(size=2 * D)
        assert np.max(np.abs(np.asarray(hess(x0 + eps * dx)) - np.asarray(hess(x0)))) < 10 * eps


@pytest.mark.parametrize("name", ["relu", "leaky_relu(0.1)"])
def test_zero_neuron_convention(name):
    """relu'(0) = 0: at w = 0 every derivative is the expectation of the autodiff per-sample derivative."""
    act = get_activation(name)
    alpha = getattr(act, "alpha", 0.0)
    v = jnp.array(PAIRS["generic"][1])
    f = lambda x: pair_kernel(act, x[:D], 0.0, x[D:], 0.0)
    x0 = jnp.concatenate([jnp.zeros(D), v])
    grad, hess = jax.jit(jax.grad(f))(x0), jax.jit(jax.hessian(f))(x0)
    assert float(f(x0)) == 0.0
    # d/dw E[leaky(w.x) leaky(v.x)] at w = 0 is leaky'(0) E[x leaky(v.x)] = alpha (1 + alpha) / 2 v; 0 in v.
    np.testing.assert_allclose(grad[:D], alpha * (1 + alpha) / 2 * v, atol=1e-15)
    np.testing.assert_allclose(grad[D:], 0.0, atol=1e-15)
    assert np.all(np.isfinite(np.asarray(hess)))
    # Hessian: d2/dw dv = leaky'(0) E[x x^T leaky'(v.x)] = alpha (alpha + (1 - alpha) / 2) I; d2/dw2 = 0 (v != 0).
    np.testing.assert_allclose(hess[:D, D:], alpha * (alpha + (1 - alpha) / 2) * np.eye(D), atol=1e-15)
    np.testing.assert_allclose(hess[:D, :D], 0.0, atol=1e-15)
    # Same neuron twice: E[leaky(w.x)^2] = (1 + alpha^2) |w|^2 / 2 elsewhere; at 0 autodiff gives 2 alpha^2 I.
    self_hess = jax.jit(jax.hessian(lambda w: pair_kernel(act, w, 0.0, w, 0.0)))(jnp.zeros(D))
    np.testing.assert_allclose(self_hess, 2 * alpha**2 * np.eye(D), atol=1e-15)


def test_quadrature_finite_for_large_arguments():
    act = get_activation("sigmoid4_softplus")
    w, v = PAIRS["generic"]
    f = lambda x: gauss_kernel(act, x[:D], x[2 * D], x[D : 2 * D], x[2 * D + 1], 64)
    x = jnp.array(np.concatenate([30 * w, -40 * v, [50.0, -60.0]]))
    assert np.all(np.isfinite(np.asarray(jax.jit(jax.hessian(f))(x))))
