"""Arc-cosine kernels of order 2 and 3 (relu^2, relu^3): Monte-Carlo, finite differences at parallel, antiparallel,
zero and generic neurons, the series/closed-form switch, and the exact population loss they give (issue 9)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape.config import parse_activation
from landscape.problem.activations import relu_kernel, relu_power_kernel
from landscape.problem.kernel_math import arccos_tail

D = 3
_RNG = np.random.default_rng(7)
_W = _RNG.normal(size=D)
_W *= 1.2 / np.linalg.norm(_W)
_PERP = _RNG.normal(size=D)
_PERP -= (_PERP @ _W) / (_W @ _W) * _W
_PERP *= 0.7 / np.linalg.norm(_PERP)
PAIRS = {
    "generic": (_W, 0.6 * _W + _PERP),
    "obtuse": (_W, -0.8 * _W + _PERP),
    "orthogonal": (_W, 1.5 * _PERP),
    "near_parallel": (_W, 1.1 * _W + 1e-3 * _PERP),
    "parallel": (_W, 1.4 * _W),
    "antiparallel": (_W, -0.5 * _W),
    "coincident": (_W, _W.copy()),
}


@pytest.mark.parametrize("p", [2, 3])
def test_arccos_kernels_match_monte_carlo(p):
    x = np.random.default_rng(p).normal(size=(1_000_000, D))
    for label, (w, v) in PAIRS.items():
        s = np.maximum(x @ w, 0.0) ** p * np.maximum(x @ v, 0.0) ** p
        mean, se = s.mean(), s.std() / math.sqrt(len(s))
        k = float(ls.ReLUPower(p).pair_kernel(jnp.array(w), jnp.array(v)))
        assert abs(k - mean) < 5 * se + 1e-14, (p, label, k, mean, se)


def test_known_values_and_order_one_equals_relu_kernel():
    e1, e2 = jnp.eye(2)
    # E[relu(z)^(2p)] = (2p - 1)!! / 2;  orthogonal: E[relu(z)^p]^2 = (p-th half moment)^2
    assert float(relu_power_kernel(e1, e1, 2)) == pytest.approx(1.5, abs=1e-15)
    assert float(relu_power_kernel(e1, e1, 3)) == pytest.approx(7.5, abs=1e-14)
    assert float(relu_power_kernel(e1, e2, 2)) == pytest.approx(0.25, abs=1e-15)
    assert float(relu_power_kernel(e1, e2, 3)) == pytest.approx(2.0 / math.pi, abs=1e-15)
    assert float(relu_power_kernel(e1, -e1, 2)) == 0.0 and float(relu_power_kernel(e1, -e1, 3)) == 0.0
    for w, v in PAIRS.values():
        assert float(relu_power_kernel(jnp.array(w), jnp.array(v), 1)) == pytest.approx(
            float(relu_kernel(jnp.array(w), jnp.array(v))), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("p", [2, 3])
def test_tail_series_and_closed_form_join_analytically(p):
    """h_p from the series just below t = 0.5 and from the closed form just above: the jumps of h, h' and h'' across
    the switch are those of one analytic function (2 eps times the next derivative)."""
    eps = 1e-7
    f0 = lambda s: arccos_tail(s, p)  # noqa: E731
    f1, f2 = jax.grad(f0), jax.grad(jax.grad(f0))
    f3 = jax.grad(f2)
    lo, hi, mid = 0.5 - eps, 0.5 + eps, 0.5
    for f, df in ((f0, f1), (f1, f2), (f2, f3)):
        jump = float(f(hi) - f(lo))
        assert abs(jump - 2 * eps * float(df(mid))) <= 1e-13, (p, jump, 2 * eps * float(df(mid)))


def _fd(fun, z, h):
    """Central differences of ``fun`` (R^P -> R^k) at z along every coordinate, (P, k), one vmapped call."""
    e = h * jnp.eye(z.shape[0])
    return (jax.vmap(fun)(z + e) - jax.vmap(fun)(z - e)) / (2 * h)


@pytest.mark.parametrize("p", [2, 3])
def test_derivatives_match_finite_differences_at_special_points(p):
    """Gradient and Hessian of (w, v) -> k_p at generic, parallel, antiparallel, coincident and zero neurons."""
    k = lambda z: relu_power_kernel(z[:D], z[D:], p)  # noqa: E731
    g = jax.grad(k)
    both = jax.jit(lambda z, h: (g(z), jax.hessian(k)(z), _fd(k, z, h), _fd(g, z, h)))  # one compilation
    cases = dict(PAIRS)
    cases["zero_w"] = (np.zeros(D), _W)
    for label, (w, v) in cases.items():
        z = jnp.array(np.concatenate([w, v]))
        zero = label == "zero_w"
        # at w = 0 the kernel is O(|w|^p): central differences of step h are off by O(h) there, so a smaller step
        h = 1e-7 if zero else 1e-5
        tol = 1e-5 if zero else 1e-7
        grad, hs, fdg, fdh = (np.asarray(a) for a in both(z, h))
        assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hs)), label
        assert np.allclose(grad, fdg, rtol=tol, atol=tol), (p, label)
        if zero and p == 2:
            # k_2(w, v) = |w|^2 (...): the Hessian at w = 0 depends on the direction; the convention relu'(0) = 0
            # (the sample loss's autodiff) gives 0 in the w block
            assert np.all(hs[:D, :D] == 0.0)
            continue
        assert np.allclose(hs, fdh, rtol=10 * tol, atol=10 * tol * max(1.0, np.abs(hs).max())), (p, label, hs - fdh)
        assert np.allclose(hs, hs.T, atol=1e-12)


@pytest.mark.parametrize("p", [2, 3])
def test_population_loss_accepts_relu_power(p):
    """relu^p is exact under PopulationLoss: zero at the teacher (accurate form ~1e-30), matches a large sample
    (certification of relu^p critical points through this loss: tests/test_dynamics.py)."""
    act = parse_activation(f"relu^{p}")
    assert act == ls.ReLUPower(p) and act.has_closed_form
    teacher = ls.Teacher.gaussian(d=D, width=2, key=jax.random.key(3), output_weights=[1.0, -0.5])
    problem = ls.TeacherStudent(teacher, ls.TwoLayer(width=2, activation=act), ls.PopulationLoss())
    theta_t = {"w": problem.teacher.params["w"], "a": problem.teacher.params["a"]}
    assert float(jax.jit(ls.problem.loss_accurate)(problem, theta_t)) < 1e-25
    theta = {"w": theta_t["w"] * 0.9 + 0.1, "a": jnp.array([0.7, 0.2])}
    x = jax.random.normal(jax.random.key(0), (400_000, D))
    sample = ls.TeacherStudent(teacher, ls.TwoLayer(width=2, activation=act), ls.SampleLoss(x))
    residual = jax.jit(jax.vmap(sample.predict, in_axes=(None, 0)))(theta, x) - sample.y
    se = float(jnp.std(0.5 * residual**2)) / math.sqrt(x.shape[0])
    population, finite = jax.jit(ls.problem.loss)(problem, theta), jax.jit(ls.problem.loss)(sample, theta)
    assert abs(float(population) - float(finite)) < 5 * se
