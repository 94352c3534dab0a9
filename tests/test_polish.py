"""Polish certifies critical points: an isolated relu minimum, a degenerate (split) minimum, a split saddle."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import landscape  # noqa: F401
from landscape.config import build_problem, config_from_dict
from landscape.flow import polish, polish_batch


def _problem(**sections):
    return build_problem(config_from_dict(sections))


def _spectrum(problem, theta):
    x, unravel = ravel_pytree(theta)
    return np.linalg.eigvalsh(np.asarray(jax.jit(jax.hessian(lambda y: problem.loss(unravel(y))))(x)))


def _perturb(theta, eps, seed):
    leaves, treedef = jax.tree.flatten(theta)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    noisy = [x + eps * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, noisy)


def test_relu_orthonormal_global_minimum():
    """Safran-Shamir / Arjevani-Field setting, k = d = 4, population loss, output weights frozen to 1."""
    p = _problem(problem={"input_dim": 4}, teacher={"width": 4}, student={"width": 4, "train_output_weights": False})
    theta0 = _perturb({"w": p.teacher_params["w"]}, 1e-2, 1)
    res = jax.jit(lambda th: polish(p, th, tol=1e-13))(theta0)
    assert bool(res.converged) and float(res.grad_norm) <= 1e-13, res.grad_norm
    assert abs(float(res.loss)) < 1e-14
    # it returns to the teacher (the minimum is isolated up to permutation: W = I, a permutation of the start)
    np.testing.assert_allclose(res.theta["w"], p.teacher_params["w"], atol=1e-10)
    assert 1 <= int(res.n_iter) <= 10


def test_degenerate_split_minimum_and_saddle():
    """Width-2 tanh teacher (trained output weights, sample loss): degenerate minimum and split saddle.

    Minimum: split teacher neuron 1 with ratio 0.3 (singular Hessian, README science section 1). Saddle: a polished
    critical point of a width-1 student split into width 2 with ratio 1.5, outside (0, 1) (Fukumizu & Amari 2000).
    """
    sections = {"problem": {"input_dim": 3, "activation": "tanh", "loss": "sample", "n_samples": 128},
                "teacher": {"width": 2, "kind": "gaussian"}}
    p3 = _problem(**sections, student={"width": 3})
    tw, ta = p3.teacher_params["w"], p3.teacher_params["a"]
    split = {"w": jnp.concatenate([tw, tw[:1]]), "a": jnp.concatenate([ta.at[0].mul(0.3), 0.7 * ta[:1]])}
    assert float(p3.loss(split)) < 1e-28
    theta0 = _perturb(split, 1e-4, 2)
    res = jax.jit(lambda th: polish(p3, th))(theta0)
    assert bool(res.converged) and float(res.grad_norm) <= 1e-10, res.grad_norm
    spec = _spectrum(p3, res.theta)
    assert float(res.loss) < 1e-12
    assert spec[0] > -1e-8 * spec[-1]  # a minimum...
    assert np.sum(np.abs(spec) < 1e-6 * spec[-1]) >= 1  # ...with a singular Hessian

    # width-1 critical point of the width-2 teacher: a rough start, then polish
    p1 = _problem(**sections, student={"width": 1})
    th1 = {"w": tw[:1] + 0.1 * tw[1:], "a": ta[:1]}
    gd_step = lambda _, th: jax.tree.map(lambda x, g: x - 0.2 * g, th, jax.grad(p1.loss)(th))  # noqa: E731
    th1 = jax.jit(lambda th: jax.lax.fori_loop(0, 300, gd_step, th))(th1)  # a gd warm start; polish does the rest
    r1 = jax.jit(lambda th: polish(p1, th))(th1)
    assert bool(r1.converged) and float(r1.grad_norm) <= 1e-10
    # split its neuron into two with ratio 1.5 / -0.5: a symmetry-induced critical point of the width-2 net
    p2 = _problem(**sections, student={"width": 2})
    lam = 1.5
    saddle = {"w": jnp.concatenate([r1.theta["w"]] * 2), "a": jnp.array([lam, 1 - lam]) * r1.theta["a"][0]}
    assert float(jnp.linalg.norm(ravel_pytree(jax.jit(jax.grad(p2.loss))(saddle))[0])) < 1e-9
    res2 = jax.jit(lambda th: polish(p2, th))(_perturb(saddle, 1e-4, 3))
    assert bool(res2.converged) and float(res2.grad_norm) <= 1e-10, res2.grad_norm
    np.testing.assert_allclose(res2.loss, r1.loss, rtol=1e-6)
    spec2 = _spectrum(p2, res2.theta)
    assert spec2[0] < -1e-4 * spec2[-1], spec2  # a strict negative direction: a saddle


def test_nan_input_and_batch():
    p = _problem(problem={"input_dim": 3, "activation": "tanh", "loss": "sample", "n_samples": 32},
                 teacher={"width": 2}, student={"width": 2})
    good = _perturb({"w": p.teacher_params["w"], "a": p.teacher_params["a"]}, 1e-3, 4)
    batch = jax.tree.map(lambda x: jnp.stack([x, x.at[0].set(jnp.nan), x]), good)
    res = polish_batch(p, batch)
    assert np.asarray(res.converged).tolist() == [True, False, True]
    assert np.all(np.asarray(res.grad_norm)[[0, 2]] <= 1e-10) and np.isnan(float(res.grad_norm[1]))
    assert int(res.n_iter[1]) == 0
