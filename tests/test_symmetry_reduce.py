"""Reduction, group actions, canonical form, distance modulo symmetry and labels (symmetry analyzer, issue 3)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape  # noqa: F401  (x64)
from landscape.analysis.symmetry import (
    canonicalize,
    distance_mod_symmetry,
    embed,
    identify,
    permute,
    random_symmetry,
    reduce_deep,
    reduce_two_layer,
    teacher_reduction,
)
from landscape.config import build_problem, config_from_dict
from landscape.config import parse_activation as get_activation
from landscape.problem.networks import TwoLayer


def make_problem(act, *, r_star=2, m=3, d=3, loss="sample", n=200, bias=False, train_a=True, frozen=None):
    """A small problem with a Gaussian teacher (Gaussian output weights unless frozen); returns (problem, cfg)."""
    student = {"width": m, "bias": bias, "train_output_weights": train_a}
    if frozen is not None:
        student["output_weights"] = frozen
    cfg = config_from_dict({
        "problem": {"input_dim": d, "activation": act, "loss": loss, "n_samples": n, "quadrature_order": 24},
        "teacher": {"width": r_star, "kind": "gaussian", "output_weights": "gaussian" if frozen is None else 1.0,
                    "bias": bias, "seed": 3},
        "student": student})
    return build_problem(cfg), cfg


def _f(params, act, x):
    net = TwoLayer(len(params["a"]), act, "b" in params, x.shape[1])
    p = {k: jnp.asarray(v) for k, v in params.items()}
    return np.asarray(jax.vmap(lambda xi: net.apply(p, xi))(jnp.asarray(x)))


def _random_params(rng, m, d, bias):
    p = {"w": rng.standard_normal((m, d)), "a": rng.standard_normal(m)}
    if bias:
        p["b"] = rng.standard_normal(m)
    return p


@pytest.mark.parametrize("act_name", ["relu", "relu^2", "leaky_relu(0.1)", "tanh", "erf", "softplus"])
@pytest.mark.parametrize("bias", [False, True])
def test_group_actions_keep_function_and_canonical_form(act_name, bias):
    act = get_activation(act_name)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 3))
    p = _random_params(rng, 4, 3, bias)
    q = random_symmetry(rng, p, act)
    np.testing.assert_allclose(_f(q, act, x), _f(p, act, x), rtol=1e-12, atol=1e-12)
    cp, cq = canonicalize(p, act), canonicalize(q, act)
    for k in cp:
        np.testing.assert_allclose(cp[k], cq[k], atol=1e-10)
    dist, _ = distance_mod_symmetry(p, q, act)
    assert dist < 1e-10
    q2 = {k: v + 0.01 * rng.standard_normal(v.shape) for k, v in q.items()}
    assert distance_mod_symmetry(p, q2, act)[0] > 1e-4


def test_distance_matches_assignment_for_permuted_perturbation():
    act = get_activation("softplus")
    rng = np.random.default_rng(2)
    p = _random_params(rng, 5, 3, False)
    delta = {k: 1e-3 * rng.standard_normal(v.shape) for k, v in p.items()}
    perm = rng.permutation(5)
    q = permute({k: p[k] + delta[k] for k in p}, perm)
    dist, assign = distance_mod_symmetry(p, q, act)
    assert np.allclose(dist, np.sqrt(sum(np.sum(v**2) for v in delta.values())))
    np.testing.assert_array_equal(perm[assign], np.arange(5))


@pytest.mark.parametrize("act_name", ["softplus", "relu", "erf"])
def test_reduce_recovers_partition_of_embedded_point(act_name):
    act = get_activation(act_name)
    rng = np.random.default_rng(3)
    pr = _random_params(rng, 2, 3, False)
    p = embed(pr, [1, 0, 1, -1, 0], [0.4, 0.7, 0.6, 0.0, 0.3], zero_incoming=rng.standard_normal((1, 3)))
    if act.homogeneity is not None:
        p = random_symmetry(rng, p, act)  # rescalings and a permutation do not change the reduced form
        p = permute(p, np.argsort(rng.permutation(5)))
    if act.odd:
        p = random_symmetry(rng, p, act)
    red = reduce_two_layer(p, act)
    assert red.r == 2 and len(red.zero) == 1 and sorted(red.multiplicities) == [2, 2]
    # reduced net computes the same function
    x = rng.standard_normal((40, 3))
    np.testing.assert_allclose(_f(red.reduced, act, x), _f(p, act, x), rtol=1e-10, atol=1e-10)
    assert distance_mod_symmetry(red.reduced, pr, act)[0] < 1e-10
    assert red.spread < 1e-12


def test_reduce_dead_relu_units_on_sample_and_zero_input_tanh():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((100, 2))
    p = {"w": np.array([[1.0, 0.5], [0.3, -1.0], [2.0, 1.0]]), "b": np.array([0.0, 0.1, -100.0]),
         "a": np.array([1.0, -0.5, 3.0])}
    red = reduce_two_layer(p, get_activation("relu"), x=x)
    assert red.dead == (2,) and red.r == 2
    q = {"w": np.array([[1.0, 0.5], [0.0, 0.0]]), "a": np.array([1.0, 2.0])}
    red = reduce_two_layer(q, get_activation("tanh"))
    assert red.dead == (1,) and red.r == 1
    red = reduce_two_layer(q, get_activation("softplus"))  # sigma(0) != 0: not dead
    assert red.dead == () and red.r == 2


def test_relu_opposite_pairs_flagged():
    p = {"w": np.array([[1.0, 0.0], [-2.0, 0.0], [0.0, 1.0]]), "a": np.array([1.0, -0.5, 1.0])}
    red = reduce_two_layer(p, get_activation("relu"))
    assert red.r == 3 and len(red.opposite) == 1 and red.opposite[0][2]  # balanced: 1 relu(z) - 1 relu(-z) = z


@pytest.mark.parametrize("act_name", ["sigmoid4_softplus", "erf"])
def test_labels_stable_under_symmetries_and_distinct_across_points(act_name):
    P, _ = make_problem(act_name, r_star=2, m=4)
    act = P.student.activation
    teacher = teacher_reduction(P)
    rng = np.random.default_rng(5)
    pr = _random_params(rng, 2, 3, False)  # some width-2 point (not critical: labels only)
    labels = set()
    for _ in range(5):
        p = embed(pr, [0, 1, 1, 0], [0.2, 0.5, 0.5, 0.8])
        p = random_symmetry(rng, p, act)
        red = reduce_two_layer(p, act)
        labels.add(identify(red, loss=0.3, teacher=teacher, global_loss_tol=1e-20).label)
    assert len(labels) == 1 and labels.pop().startswith("sym|r=2|")
    other = embed(pr, [0, 1, 1, 1], [1.0, 0.2, 0.3, 0.5])  # different multiplicities: different subspace orbit
    red = reduce_two_layer(other, act)
    assert identify(red, loss=0.3, teacher=teacher, global_loss_tol=1e-20).label.endswith("n=1,3|z=0|d=0") or \
        identify(red, loss=0.3, teacher=teacher, global_loss_tol=1e-20).label.endswith("n=3,1|z=0|d=0")


def test_deep_reduction_layer_by_layer():
    rng = np.random.default_rng(6)
    w1 = rng.standard_normal((3, 2))
    w1 = np.concatenate([w1, w1[:1]])  # neuron 3 duplicates neuron 0 in layer 1
    w2 = rng.standard_normal((2, 4))
    w2[:, 1] = 0.0  # neuron 1 of layer 1 is zero-output
    w2 = np.concatenate([w2, w2[:1]])  # neuron 2 of layer 2 duplicates neuron 0
    params = {"layers": ({"w": w1}, {"w": w2}), "a": np.array([1.0, 2.0, -0.5])}
    red = reduce_deep(params, get_activation("tanh"))
    assert red.widths == (4, 3) and red.reduced_widths == (2, 2)
    assert red.layers[0] == (((0, 3), (2,)), (1,)) and red.layers[1] == (((0, 2), (1,)), ())
    # split ratios: (2 - 1) * 3 outgoing entries in layer 1, (2 - 1) * 1 in layer 2
    assert red.predicted_dim == 3 + 1


def test_reduce_is_dataclass_with_reported_tolerances():
    red = reduce_two_layer({"w": np.eye(2), "a": np.ones(2)}, get_activation("softplus"))
    assert dataclasses.is_dataclass(red) and "a_tol" in next(iter(red.tol.as_dict()))
