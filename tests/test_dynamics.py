"""Small-initialisation dynamics (issue 9): KKT points of the neural correlation function in a hand-checkable case,
the rank-one characterisation on the points found (and its sufficiency), plateau detection, directional
convergence of a small-initialisation flow, and the figure configs' error lines."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape.analysis.dynamics import (
    cosine_mod_permutation,
    cosine_mod_split,
    detect_plateaus,
    directional_convergence,
    homogeneity_order,
    kkt_points,
    kkt_residual,
    neural_correlation,
    rank_one_condition,
)


def _one_sample_problem(width=1, p=2):
    """One sample x = e1 with label y = 1: N(w, a) = sum_j a_j relu(w_j1)^p, maximised on the sphere by one neuron
    w = (sqrt(p / (p + 1)), 0, ...), a = 1 / sqrt(p + 1): N* = p^(p/2) / (p + 1)^((p + 1) / 2)."""
    x = jnp.array([[1.0, 0.0, 0.0]])
    teacher = ls.Teacher.orthonormal(d=3, width=1)
    act = ls.ReLU() if p == 1 else ls.ReLUPower(p)
    return ls.TeacherStudent(teacher, ls.TwoLayer(width=width, activation=act), ls.SampleLoss(x, jnp.ones(1)))


@pytest.fixture(scope="module")
def kkt_two():
    """KKT points of the width-2 relu^2 one-sample problem (one compilation shared by the tests below)."""
    return kkt_points(_one_sample_problem(width=2), key=jax.random.key(0), n=24, ascent_steps=300)


def test_homogeneity_order():
    assert homogeneity_order(_one_sample_problem(p=2)) == 3
    assert homogeneity_order(_one_sample_problem(p=1)) == 2
    frozen = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2, activation=ls.ReLUPower(3)),
                               output_weights="teacher")
    assert homogeneity_order(frozen) == 3
    with pytest.raises(ValueError, match="biases"):
        homogeneity_order(ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2, bias=True),
                                            ls.SampleLoss(jnp.ones((4, 3)))))
    with pytest.raises(ValueError, match="homogeneous"):
        homogeneity_order(ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2),
                                            ls.TwoLayer(width=2, activation=ls.Tanh())))


def test_kkt_points_of_the_hand_checkable_case(kkt_two):
    """Width 2: ascent finds the maximum, one active neuron (N* = 2/3^(3/2)), the other neuron zero; residual
    < 1e-12, rank one. (Two equal neurons sharing e1, N* / sqrt(2), is a KKT saddle of N: see the next test.)"""
    n_star = 2.0 / 3.0**1.5
    assert kkt_two.n_converged >= 20
    assert np.all(kkt_two.residual < 1e-12)
    assert kkt_two.value[0] == pytest.approx(n_star, abs=1e-12)
    best = kkt_two.point(0)
    live = int(np.argmax(np.abs(best["a"])))
    assert np.allclose(best["w"][live], [np.sqrt(2.0 / 3.0), 0.0, 0.0], atol=1e-10)
    assert best["a"][live] == pytest.approx(1.0 / np.sqrt(3.0), abs=1e-10)
    assert np.allclose(np.delete(best["w"], live, 0), 0.0, atol=1e-8)
    assert np.all(kkt_two.value > 0) and np.all(kkt_two.rank_one)
    assert kkt_two.count[0] >= 10  # deduplicated modulo permutation: which neuron is active does not matter
    assert kkt_two.n_zero + kkt_two.count.sum() == kkt_two.n_converged


def test_rank_one_condition_holds_on_found_points_and_is_sufficient(kkt_two):
    problem = _one_sample_problem(width=2)
    for i in np.flatnonzero(kkt_two.rank_one & (kkt_two.value > 1e-9)):
        assert kkt_two.condition[i] < 1e-10, (i, kkt_two.condition[i])
    # sufficiency: a point built from the conditions (direction e1 is a KKT direction of n(s) = relu(s_1)^2,
    # balanced |w|^2 = 2 a^2, equal shares) is a KKT point; an unbalanced one violates both
    a = 1.0 / np.sqrt(6.0)
    built = {"w": np.array([[np.sqrt(2) * a, 0, 0], [np.sqrt(2) * a, 0, 0]]), "a": np.array([a, a])}
    assert rank_one_condition(problem, built) < 1e-14
    assert float(kkt_residual(problem, {k: jnp.asarray(v) for k, v in built.items()})) < 1e-14
    bad = {"w": built["w"] * np.array([[1.2], [0.8]]), "a": built["a"]}
    bad_norm = np.sqrt(sum(np.sum(v**2) for v in bad.values()))
    bad = {k: v / bad_norm for k, v in bad.items()}
    assert rank_one_condition(problem, bad) > 1e-3
    assert float(kkt_residual(problem, {k: jnp.asarray(v) for k, v in bad.items()})) > 1e-3
    assert np.isnan(rank_one_condition(problem, {"w": np.eye(3)[:2], "a": np.ones(2)}))  # rank two


@pytest.mark.parametrize("act", [ls.ReLU(), ls.LeakyReLU(0.1), ls.ReLUPower(3)], ids=lambda a: a.label)
def test_rank_one_characterisation_for_relu_leaky_and_polynomial(act):
    """Six labelled samples, width 2: every KKT point found has residual < 1e-12, and every rank-one one satisfies
    the characterisation (conditions (i)-(iii) of landscape.analysis.dynamics.neural_correlation)."""
    x = jax.random.normal(jax.random.key(0), (6, 3))
    y = jnp.array([1.0, -0.5, 0.8, 0.3, -1.0, 0.6])
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=1), ls.TwoLayer(width=2, activation=act),
                                ls.SampleLoss(x, y))
    kkt = kkt_points(problem, key=jax.random.key(1), n=12, ascent_steps=200)
    assert len(kkt) >= 1 and kkt.n_converged >= 10
    assert np.all(kkt.residual < 1e-12)
    assert np.any(kkt.rank_one)
    assert np.all(kkt.condition[kkt.rank_one] < 1e-10)


def test_neural_correlation_population_matches_sample():
    teacher = ls.Teacher.gaussian(d=3, width=2, key=jax.random.key(2), output_weights=[1.0, -0.6])
    act = ls.ReLUPower(2)
    x = jax.random.normal(jax.random.key(1), (200_000, 3))
    theta = {"w": jnp.array([[0.3, -0.2, 0.5], [0.1, 0.4, -0.3]]), "a": jnp.array([0.4, -0.7])}
    pop = ls.TeacherStudent(teacher, ls.TwoLayer(width=2, activation=act))
    smp = ls.TeacherStudent(teacher, ls.TwoLayer(width=2, activation=act), ls.SampleLoss(x))
    terms = smp.y * jax.jit(jax.vmap(smp.predict, in_axes=(None, 0)))(theta, x)
    se = float(jnp.std(terms)) / np.sqrt(x.shape[0])
    ncf = jax.jit(neural_correlation)
    assert abs(float(ncf(pop, theta)) - float(ncf(smp, theta))) < 5 * se


def test_cosine_mod_permutation():
    problem = _one_sample_problem(width=3)
    a = {"w": jnp.arange(9.0).reshape(3, 3), "a": jnp.array([1.0, -2.0, 0.5])}
    perm = jnp.array([2, 0, 1])
    b = {"w": a["w"][perm], "a": a["a"][perm]}
    perms = jnp.asarray([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
    cos = jax.jit(cosine_mod_permutation)
    assert float(cos(problem, a, b, perms)) == pytest.approx(1.0, abs=1e-14)
    assert float(cos(problem, a, b, perms[:1])) < 0.99
    # p = 1: a neuron split into two copies of unequal magnitudes on the same ray is in the KKT family
    relu = _one_sample_problem(width=3, p=1)
    target = {"w": jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), "a": jnp.array([1.0, 0.0, 0.0])}
    split = {"w": jnp.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.9, 0.0, 0.0]]), "a": jnp.array([0.0, 0.3, 0.9])}
    assert float(jax.jit(cosine_mod_split)(relu, split, target)) == pytest.approx(1.0, abs=1e-14)
    assert float(cos(relu, split, target, perms)) < 0.96


def test_directional_convergence_one_neuron(kkt_two):
    """relu^2, one sample: from delta w0 the direction at |theta| = 30 delta is close to a KKT point, and more so
    for smaller delta; escape times follow 1/delta^(L - 2) = 1/delta."""
    problem = _one_sample_problem(width=2)
    sweep = directional_convergence(problem, kkt_two, deltas=[1e-2, 1e-3], key=jax.random.key(3), n=6,
                                    radius_factor=30.0, horizon=4.0, n_snapshots=60)
    table = sweep.table()
    assert sweep.order == 3 and np.all(table["reached"] >= 3)
    assert np.all(table["cos_median"] > 0.99)
    assert table["kkt_res_median"][1] < table["kkt_res_median"][0]
    assert sweep.slope == pytest.approx(1.0, abs=0.1)


def test_detect_plateaus():
    ts = np.concatenate([[0.0], np.logspace(-3, 3, 61)])
    tt = np.maximum(ts, 1e-3)
    loss = np.where(ts < 1e-1, 0.5, np.where(ts < 1, 0.5 * (1e-1 / tt) ** 2, np.where(ts < 1e2, 5e-3, 5e-3 *
                                                                                     (1e2 / tt) ** 3)))
    loss[-5:] = np.nan  # the flow stopped
    plateaus = detect_plateaus(ts, loss, flat_tol=0.02, min_decades=0.5)
    assert [(round(np.log10(ts[a])), round(np.log10(ts[b]))) for a, b in plateaus] == [(-3, -1), (0, 2)]
    assert detect_plateaus(ts, loss, min_decades=3) == []


def test_figure_configs_refuse_bad_dynamics_keys(tmp_path, capsys):
    from landscape.cli import main

    text = open("configs/saddle_to_saddle.toml").read().replace("flat_tol = 0.02", "flat_toll = 0.02")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["figure", "saddle-to-saddle", "--config", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "dynamics.flat_toll" in err and err.count("\n") == 1
