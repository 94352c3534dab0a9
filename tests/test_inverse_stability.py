"""Inverse stability: distances modulo symmetries, exact realization distances against Monte Carlo, pathology
families whose ratio blows up while a balanced, well-separated net stays bounded, the restricted set."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape.analysis.inverse_stability import (
    PATHOLOGIES,
    pairwise_ratios,
    parameter_distance,
    pathology_family,
    pathology_pair,
    realization_distance,
    restricted_set,
    stability_ratio,
    well_separated_pair,
)

# Stated bounds: a balanced, well-separated net has ratio <= SEPARATED (measured ~1.3 for t in [1e-4, 0.1]); each
# pathology exceeds PATHOLOGICAL at the end of its family (measured: parallel 1.6e4, opposite 2.8e4 at t = 1e-4,
# unbalanced raw 146 at t = 100, dead 40 at t = 3).
SEPARATED, PATHOLOGICAL = 3.0, 30.0
FAMILIES = {"unbalanced": [1.0, 10.0, 100.0], "parallel": [1.0, 1e-2, 1e-4], "opposite": [1.0, 1e-2, 1e-4],
            "dead": [0.0, 1.5, 3.0]}


def _mc(net, p1, p2, n=400_000, seed=1):
    x = np.random.default_rng(seed).standard_normal((n, net.input_dim))
    relu = lambda z: np.maximum(z, 0.0)  # noqa: E731
    f = lambda p: relu(x @ p["w"].T + p.get("b", 0.0)) @ p["a"]  # noqa: E731
    g = lambda p: ((x @ p["w"].T + p.get("b", 0.0) > 0) * p["a"]) @ p["w"]  # noqa: E731
    diff, gdiff = f(p1) - f(p2), g(p1) - g(p2)
    return np.sqrt(np.mean(diff**2)), np.sqrt(np.mean(diff**2) + np.mean(np.sum(gdiff**2, 1)))


def test_exact_realization_distances_match_monte_carlo():
    rng = np.random.default_rng(0)
    net = ls.TwoLayer(3, ls.ReLU(), False, 4)
    p1 = {"w": rng.standard_normal((3, 4)), "a": rng.standard_normal(3)}
    p2 = {"w": rng.standard_normal((3, 4)), "a": rng.standard_normal(3)}
    r = realization_distance(net, p1, p2)
    assert r.l2_method == "exact" and r.sobolev_method == "exact"
    l2, sob = _mc(net, p1, p2)
    np.testing.assert_allclose([r.l2, r.sobolev], [l2, sob], rtol=1e-2)
    # identical realizations (a permuted, rescaled copy) are at distance 0 in both
    q = {"w": p1["w"][[2, 0, 1]] * np.array([[2.0], [0.5], [3.0]]), "a": p1["a"][[2, 0, 1]] / np.array([2.0, 0.5, 3.0])}
    r0 = realization_distance(net, p1, q)
    assert r0.l2 < 1e-12 and r0.sobolev < 1e-12
    assert parameter_distance(p1, q, net.activation) < 1e-12 < parameter_distance(p1, q, net.activation, balance=False)


def test_sample_distances_with_biases():
    net, p1, p2 = pathology_pair("dead", 1.0)
    r = realization_distance(net, p1, p2)
    assert r.l2_method.startswith("samples")
    l2, sob = _mc(net, p1, p2, seed=3)
    np.testing.assert_allclose([r.l2, r.sobolev], [l2, sob], rtol=2e-2)


@pytest.mark.parametrize("kind", PATHOLOGIES)
def test_pathology_ratio_blows_up_while_well_separated_stays_bounded(kind):
    fam = pathology_family(kind, FAMILIES[kind])
    ratio = fam["ratio_raw"] if kind == "unbalanced" else fam["ratio_l2"]
    assert np.all(np.diff(ratio) > 0), ratio  # grows along the family
    assert ratio[-1] > PATHOLOGICAL and ratio[-1] > 10 * ratio[0]
    if kind == "unbalanced":  # balancing removes this one: the ratio modulo rescalings is constant
        np.testing.assert_allclose(fam["ratio_l2"], fam["ratio_l2"][0], rtol=1e-9)
    ok = pathology_family("well_separated", [1e-1, 1e-2, 1e-4])
    assert np.all(ok["ratio_l2"] < SEPARATED) and np.all(ok["ratio_raw"] < SEPARATED)


def test_restricted_set_flags_each_pathology():
    net, p, _ = well_separated_pair(0.1)
    assert restricted_set(p, net.activation).in_set
    expect = {"unbalanced": "unbalanced", "parallel": "parallel", "opposite": "opposite", "dead": "dead"}
    ts = {"unbalanced": 10.0, "parallel": 1e-3, "opposite": 1e-3, "dead": 4.0}
    for kind, flag in expect.items():
        net, p1, p2 = pathology_pair(kind, ts[kind])
        flags = set(restricted_set(p1, net.activation).flags) | set(restricted_set(p2, net.activation).flags)
        assert flag in flags, (kind, flags)


def test_pairwise_ratios_over_a_batch_of_points():
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
    base = {"w": jnp.eye(3)[:2], "a": jnp.ones(2)}
    thetas = jax.tree.map(lambda v: jnp.stack([v, v * 1.1, v[::-1]]), base)
    out = pairwise_ratios(problem, thetas, select=np.array([True, True, False]))
    assert out["i"].tolist() == [0] and out["j"].tolist() == [1]
    net = problem.student
    ref = stability_ratio(net, {k: np.asarray(v[0]) for k, v in thetas.items()},
                          {k: np.asarray(v[1]) for k, v in thetas.items()})
    np.testing.assert_allclose(out["ratio_l2"][0], ref.ratio_l2, rtol=1e-12)
    all_pairs = pairwise_ratios(problem, thetas)
    assert len(all_pairs["i"]) == 3
    assert np.isnan(all_pairs["ratio_l2"][1])  # points 0 and 2 are the same net: 0 / 0
