"""Exact population loss: against large-sample losses, derivatives against finite differences at coincident, parallel,
antiparallel, teacher and zero neurons, exact critical points, and JAX transformations through the custom JVP."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import landscape  # noqa: F401  (float64)
from landscape.config import parse_activation as get_activation
from landscape.problem.networks import TwoLayer
from landscape.problem.population import population_loss

D, M, R = 4, 3, 2


def _problem(name, bias=False, m=M, r=R, d=D):
    act = get_activation(name)
    student, teacher = TwoLayer(m, act, bias, d), TwoLayer(r, act, bias, d)
    tp = {"w": jnp.eye(d)[:r], "a": jnp.array([1.0, -0.7, 0.5, 1.2][:r])}
    if bias:
        tp["b"] = jnp.array([0.3, -0.2, 0.1, 0.0][:r])
    return student, teacher, tp


def _params(kind, bias=False, m=M, d=D, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(m, d)) * 1.5 / math.sqrt(d)
    b = rng.normal(size=m) * 0.5
    if kind == "coincident":
        w[1], b[1] = w[0], b[0]
    elif kind == "teacher":
        w[0], b[0] = np.eye(d)[0], 0.3
    elif kind == "parallel":
        w[1] = 1.7 * w[0]
    elif kind == "antiparallel":
        w[1] = -0.6 * w[0]
    elif kind == "zero":
        w[0] = 0.0
    p = {"w": jnp.array(w), "a": jnp.array(rng.normal(size=m))}
    if bias:
        p["b"] = jnp.array(b)
    return p


@functools.cache
def _compiled(name, bias):
    """Jitted loss, gradient, Hessian and their vmaps for one (activation, bias), shared by all points."""
    student, teacher, tp = _problem(name, bias)
    unravel = ravel_pytree(_params("generic", bias))[1]
    f = lambda x: population_loss(student, unravel(x), teacher, tp)
    g = jax.grad(f)
    return {"f": jax.jit(f), "g": jax.jit(g), "h": jax.jit(jax.hessian(f)), "vf": jax.jit(jax.vmap(f)),
            "vg": jax.jit(jax.vmap(g)), "raw": f, "unravel": unravel}


def _flat_loss(name, bias, kind):
    c = _compiled(name, bias)
    return c["raw"], np.asarray(ravel_pytree(_params(kind, bias))[0]), c["unravel"]


def _fd_jac(vf, x, h):
    """Central differences of f at x from its vmapped form vf over the 2n perturbed points; shape f(x).shape + (n,)."""
    e = h * np.eye(x.size)
    out = np.asarray(vf(jnp.asarray(np.concatenate([x + e, x - e]))))
    return np.moveaxis((out[: x.size] - out[x.size :]) / (2 * h), 0, -1)


# ------------------------------------------------------------------------------------------------- values


@pytest.mark.parametrize("name,bias", [("relu", False), ("leaky_relu(0.1)", False), ("erf", False), ("softplus", True),
                                       ("tanh", True)])
def test_population_loss_matches_large_sample(name, bias):
    student, teacher, tp = _problem(name, bias)
    p = _params("generic", bias)
    x = jax.random.normal(jax.random.PRNGKey(0), (1_000_000, D))
    err = jax.vmap(lambda xi: student.apply(p, xi) - teacher.apply(tp, xi))(x)
    per_sample = 0.5 * np.asarray(err) ** 2
    se = per_sample.std() / math.sqrt(per_sample.size)
    assert abs(float(population_loss(student, p, teacher, tp)) - per_sample.mean()) < 5 * se


# -------------------------------------------------------------------------------------------- derivatives

KINDS = ["generic", "coincident", "teacher", "parallel", "antiparallel", "zero"]


@pytest.mark.parametrize("name,bias", [("relu", False), ("leaky_relu(0.2)", False), ("erf", False), ("erf", True),
                                       ("softplus", False), ("tanh", True)])
def test_gradient_and_hessian_match_finite_differences(name, bias):
    smooth = get_activation(name).smooth
    worst = {}
    for kind in KINDS:
        if kind == "zero" and not smooth:
            continue  # not differentiable there: see test_zero_relu_neuron_convention
        c = _compiled(name, bias)
        x = _flat_loss(name, bias, kind)[1]
        hess = np.asarray(c["h"](x))
        assert np.all(np.isfinite(hess)), kind
        gx = np.asarray(c["g"](x))
        np.testing.assert_allclose(gx, _fd_jac(c["vf"], x, 1e-6), atol=1e-8 * max(1.0, np.abs(gx).max()), rtol=0)
        # ReLU kernels are C^2 only at parallel neurons (g ~ theta^3): FD of the gradient is O(h) there.
        c2_only = not smooth and kind != "generic"
        h = 1e-7 if c2_only else 1e-5
        tol = (1e-6 if c2_only else 1e-8) * max(1.0, np.abs(hess).max())
        worst[kind] = np.abs(hess - _fd_jac(c["vg"], x, h)).max()
        assert worst[kind] < tol, (kind, worst)
        np.testing.assert_allclose(hess, hess.T, atol=1e-14 * max(1.0, np.abs(hess).max()))


@pytest.mark.parametrize("name", ["relu", "leaky_relu(0.2)"])
def test_zero_relu_neuron_convention(name):
    """At w_0 = 0 derivatives follow relu'(0) = 0: they equal the sample-mean autodiff derivatives in expectation.

    For relu every gradient/Hessian entry involving w_0 is exactly 0 and the rest is the loss without neuron 0;
    for leaky relu the w_0-gradient is a_0 alpha E[x r(x)], r = f_student - f_teacher, checked against a large sample.
    """
    _, x, unravel = _flat_loss(name, False, "zero")
    c = _compiled(name, False)
    student, teacher, tp = _problem(name)
    p = unravel(jnp.asarray(x))
    grad = np.asarray(c["g"](x))
    hess = np.asarray(c["h"](x))
    assert np.all(np.isfinite(hess))
    w0 = np.asarray(ravel_pytree({"a": jnp.zeros(M), "w": jnp.zeros((M, D)).at[0].set(1.0)})[0], bool)
    if name == "relu":
        assert np.all(grad[w0] == 0.0) and np.all(hess[w0] == 0.0) and np.all(hess[:, w0] == 0.0)
    xs = jax.random.normal(jax.random.PRNGKey(1), (1_000_000, D))
    sample = lambda q: 0.5 * jnp.mean((jax.vmap(lambda xi: student.apply(q, xi) - teacher.apply(tp, xi))(xs)) ** 2)
    g_sample = np.asarray(ravel_pytree(jax.grad(sample)(p))[0])
    np.testing.assert_allclose(grad, g_sample, atol=5e-3)  # MC error ~ 1e-3 at n = 1e6
    # The rest of the gradient and Hessian is smooth in the other coordinates: central differences apply there.
    np.testing.assert_allclose(hess[:, ~w0], _fd_jac(c["vg"], x, 1e-5)[:, ~w0], atol=1e-8)


# ------------------------------------------------------------------------------------- exact critical points


@pytest.mark.parametrize("name,train_a", [("relu", True), ("relu", False), ("erf", False), ("softplus", True)])
def test_student_equal_teacher_is_exact_global_minimum(name, train_a):
    d, r = 5, 3
    student, teacher, tp = _problem(name, m=r, r=r, d=d)
    tp = {"w": jnp.eye(d)[:r], "a": jnp.ones(r)}
    full = lambda theta: {**theta, "a": theta["a"] if train_a else tp["a"]}
    theta = {"w": tp["w"], "a": tp["a"]} if train_a else {"w": tp["w"]}
    x, unravel = ravel_pytree(theta)
    f = lambda z: population_loss(student, full(unravel(z)), teacher, tp)
    assert abs(float(jax.jit(f)(x))) < 1e-15
    assert np.abs(np.asarray(jax.jit(jax.grad(f))(x))).max() < 1e-15
    hess = np.asarray(jax.jit(jax.hessian(f))(x))
    eig = np.linalg.eigvalsh(hess)
    assert eig.min() > -1e-13 * eig.max()


def test_relu_split_neuron_critical_point():
    """Two student neurons on teacher neuron v_0 with output weights beta, 1 - beta: gradient exactly ~0."""
    d, r = 4, 2
    student, teacher, tp = _problem("relu", m=3, r=r, d=d)
    tp = {"w": jnp.eye(d)[:r], "a": jnp.ones(r)}
    for beta in (0.5, 0.3, -0.4):
        p = {"w": jnp.stack([tp["w"][0], tp["w"][0], tp["w"][1]]), "a": jnp.array([beta, 1 - beta, 1.0])}
        grad = jax.grad(lambda q: population_loss(student, q, teacher, tp))(p)
        assert max(float(jnp.abs(leaf).max()) for leaf in jax.tree.leaves(grad)) < 1e-15, beta
    # A scaled split (c w, a / c) of a ReLU neuron is a critical point too (positive homogeneity).
    p = {"w": jnp.stack([2.0 * tp["w"][0], 0.5 * tp["w"][0], tp["w"][1]]), "a": jnp.array([0.25, 1.0, 1.0])}
    grad = jax.grad(lambda q: population_loss(student, q, teacher, tp))(p)
    assert max(float(jnp.abs(leaf).max()) for leaf in jax.tree.leaves(grad)) < 1e-15


# ------------------------------------------------------------------------------------ transformations


@pytest.mark.parametrize("name,bias", [("relu", False), ("softplus", True)])
def test_transformations_agree(name, bias):
    """jax.hessian is jacfwd(jacrev); reverse-over-reverse goes through the transpose of the custom JVP instead."""
    f, x, _ = _flat_loss(name, bias, "parallel")
    h1 = np.asarray(_compiled(name, bias)["h"](x))
    h2 = np.asarray(jax.jit(jax.jacrev(jax.jacrev(f)))(x))
    np.testing.assert_allclose(h2, h1, atol=1e-13)
    xs = np.stack([x, _flat_loss(name, bias, "generic")[1], _flat_loss(name, bias, "zero")[1]])
    c = _compiled(name, bias)
    batched = np.asarray(c["vg"](xs))
    for xi, gi in zip(xs, batched, strict=True):
        np.testing.assert_allclose(gi, np.asarray(c["g"](xi)), atol=1e-14)


@pytest.mark.parametrize("name,bias", [("relu", False), ("tanh", True)])
def test_loss_invariant_under_neuron_permutation(name, bias):
    student, teacher, tp = _problem(name, bias)
    p = _params("generic", bias)
    perm = np.array([2, 0, 1])
    q = {k: v[perm] for k, v in p.items()}
    assert float(population_loss(student, q, teacher, tp)) == pytest.approx(
        float(population_loss(student, p, teacher, tp)), rel=1e-14, abs=1e-16
    )


# ------------------------------------------------------------------------------------ closed-form gradient

CLOSED_KINDS = KINDS + ["near_parallel", "near_antiparallel", "equal_teacher"]


def _closed_params(kind, m=5, d=D, seed=3):
    """Points where the closed-form gradient is most at risk: the KINDS above plus angles of 1e-9 and pi - 1e-9
    (chord lengths near 0) and a student neuron equal to a teacher neuron."""
    if kind in KINDS:
        return _params(kind, m=m, d=d, seed=seed)
    p = _params("generic", m=m, d=d, seed=seed)
    w = np.asarray(p["w"]).copy()
    e = np.zeros(d)
    e[-1] = 1e-9
    if kind == "near_parallel":
        w[1] = 2.0 * w[0] + e
    elif kind == "near_antiparallel":
        w[1] = -0.5 * w[0] + e
    else:
        w[2] = np.eye(d)[1]
    return {"w": jnp.array(w), "a": p["a"]}


@pytest.mark.parametrize("name", ["relu", "leaky_relu(0.2)", "leaky_relu(0)"])
def test_closed_form_gradient_equals_autodiff(name):
    """population_value_and_grad (what the flows use) against jax.value_and_grad of population_loss: equal to
    rounding at every degenerate configuration, for w and a, including the relu'(0) = 0 convention at w = 0."""
    from landscape.problem.population import population_value_and_grad

    student, teacher, tp = _problem(name, m=5)
    f = jax.jit(jax.value_and_grad(lambda p: population_loss(student, p, teacher, tp)))
    g = jax.jit(lambda p: population_value_and_grad(student, p, teacher, tp))
    for kind in CLOSED_KINDS:
        p = _closed_params(kind)
        (l0, g0), (l1, g1) = f(p), g(p)
        assert abs(float(l0) - float(l1)) <= 1e-14 * max(1.0, abs(float(l0))), kind
        for key in ("w", "a"):
            assert np.all(np.isfinite(np.asarray(g1[key]))), (kind, key)
            np.testing.assert_allclose(g1[key], g0[key], rtol=0, atol=1e-14, err_msg=f"{kind} {key}")


def test_problem_value_and_grad_dispatch():
    """TeacherStudent.value_and_grad: the closed form for relu (frozen output weights: only w differentiated) and
    autodiff for an activation without kernel slopes (erf); both equal jax.value_and_grad(problem.loss)."""
    import landscape as ls

    teacher = ls.Teacher.orthonormal(d=D, width=R)
    cases = [ls.TeacherStudent(teacher, ls.TwoLayer(width=4, activation=ls.ReLU()), output_weights="teacher"),
             ls.TeacherStudent(teacher, ls.TwoLayer(width=4, activation=ls.ReLU())),
             ls.TeacherStudent(teacher, ls.TwoLayer(width=4, activation=ls.Erf()))]
    for problem in cases:
        theta = {k: v for k, v in _closed_params("near_parallel", m=4).items() if k in problem.trainable_shapes}
        (l0, g0), (l1, g1) = jax.value_and_grad(problem.loss)(theta), problem.value_and_grad(theta)
        assert set(g1) == set(theta)
        assert abs(float(l0) - float(l1)) <= 1e-14
        for key in theta:
            np.testing.assert_allclose(g1[key], g0[key], rtol=0, atol=1e-14)
