"""Local dimension: the Jacobian rank against counts derived by hand, invariances, linear regions, matrix-free rank."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape.analysis.local_dimension import (
    jacobian,
    linear_regions,
    local_dimension,
    local_dimension_along,
    local_dimension_matfree,
)

D, WIDTHS, K, N = 3, (5, 4), 2, 200


def _deep_net(bias=False):
    keys = jax.random.split(jax.random.key(2), 4)
    mlp = ls.MLP(WIDTHS, outputs=K, input_dim=D, bias=bias)
    layers = [{"w": jax.random.normal(keys[0], (5, 3))}, {"w": jax.random.normal(keys[1], (4, 5))}]
    if bias:
        layers[0]["b"] = jnp.zeros(5)
        layers[1]["b"] = jnp.full(4, 0.1)
    theta = {"layers": tuple(layers), "a": jax.random.normal(keys[2], (4, K))}
    x = jax.random.normal(keys[3], (N, D))
    x = x.at[:, 0].set(jnp.abs(x[:, 0]) + 0.1)  # x_1 > 0 on the sample: w = -e1 is a dead first-layer neuron
    return mlp, theta, x


def _with_dead(theta, row=0, bias=None):
    layers = list(theta["layers"])
    first = dict(layers[0])
    if bias is None:
        first["w"] = first["w"].at[row].set(jnp.array([-1.0, 0.0, 0.0]))
    else:
        first["b"] = first["b"].at[row].set(bias)
    layers[0] = first
    return {**theta, "layers": tuple(layers)}


def test_rank_equals_hand_count_for_constructed_nets():
    mlp, theta, x = _deep_net()
    P = 5 * 3 + 4 * 5 + 4 * K  # 43
    ld = local_dimension(mlp, theta, x)
    # generic deep ReLU net, rich sample: only the 5 + 4 hidden rescalings are lost
    assert int(ld.n_params) == P and int(ld.rank) == P - 9 == int(ld.bound)
    assert float(ld.gap) > 1e8  # the rank is decided by a clean gap, not by the threshold
    # one dead first-layer neuron: 8 alive rescalings, its 3 incoming and 4 outgoing weights are null
    dead = local_dimension(mlp, _with_dead(theta), x)
    assert int(dead.n_dead) == 1 and int(dead.rank) == P - 8 - (3 + 4) == int(dead.bound) and float(dead.gap) > 1e8
    # with biases: two dead neurons (w = -e1, and b = -100): P = 52, 7 alive, 2 * (3 + 1 + 4) null weights
    mlpb, thetab, _ = _deep_net(bias=True)
    thetab = _with_dead(_with_dead(thetab), row=1, bias=-100.0)
    ldb = local_dimension(mlpb, thetab, x)
    assert int(ldb.n_params) == 52 and int(ldb.n_dead) == 2 and int(ldb.rank) == 52 - 7 - 16 == int(ldb.bound)
    # shallow: orthonormal neurons see all 2^3 patterns; 15 parameters - 3 rescalings
    net = ls.TwoLayer(width=3, input_dim=4)
    two = {"w": jnp.eye(3, 4), "a": jnp.array([1.0, -2.0, 0.5])}
    x4 = jax.random.normal(jax.random.key(1), (100, 4))
    assert int(local_dimension(net, two, x4).rank) == 12


def test_rank_invariant_under_permutations_and_rescalings():
    mlp, theta, x = _deep_net()
    ld = local_dimension(mlp, theta, x)
    perm1, perm2 = jnp.array([3, 0, 4, 1, 2]), jnp.array([2, 3, 1, 0])
    c1, c2 = jnp.array([0.3, 2.0, 1.5, 0.7, 4.0]), jnp.array([0.5, 3.0, 1.2, 0.25])
    w1, w2 = theta["layers"][0]["w"], theta["layers"][1]["w"]
    # rescale: W1 -> diag(c1) W1, W2 -> diag(c2) W2 diag(1/c1), a -> diag(1/c2) a; then permute
    w1s, w2s, as_ = c1[:, None] * w1, c2[:, None] * w2 / c1[None, :], theta["a"] / c2[:, None]
    moved = {"layers": ({"w": w1s[perm1]}, {"w": w2s[perm2][:, perm1]}), "a": as_[perm2]}
    f = jax.vmap(lambda xi: mlp.apply(theta, xi))(x)
    np.testing.assert_allclose(jax.vmap(lambda xi: mlp.apply(moved, xi))(x), f, rtol=1e-12, atol=1e-12)
    lm = local_dimension(mlp, moved, x)
    assert int(lm.rank) == int(ld.rank) and int(lm.bound) == int(ld.bound)
    assert not np.allclose(lm.singular_values, ld.singular_values)  # the spectrum moves, the rank does not


def test_linear_regions_of_shallow_nets():
    x = jax.random.normal(jax.random.key(3), (400, 2))
    two = ls.TwoLayer(width=2, input_dim=2)
    assert linear_regions(two, {"w": jnp.eye(2), "a": jnp.ones(2)}, x) == 4  # quadrants
    angles = jnp.array([0.0, 1.0, 2.0])
    three = ls.TwoLayer(width=3, input_dim=2)
    w = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    assert linear_regions(three, {"w": w, "a": jnp.ones(3)}, x) == 6  # 3 lines through 0: 6 sectors
    # a sample on one side of every hyperplane sees one region, and the rank drops to d = 2
    pos = jnp.abs(x) + 0.01
    assert linear_regions(three, {"w": jnp.abs(w) + 0.1, "a": jnp.ones(3)}, pos) == 1
    assert int(local_dimension(three, {"w": jnp.abs(w) + 0.1, "a": jnp.ones(3)}, pos).rank) == 2


def test_matrix_free_rank_matches_dense_svd():
    mlp, theta, x = _deep_net()
    theta = _with_dead(theta)
    dense = local_dimension(mlp, theta, x)
    run = jax.jit(lambda th, k: local_dimension_matfree(mlp, th, x, key=k, num_matvecs=43, num_samples=100))
    est = run(theta, jax.random.key(0))
    assert abs(float(est.s_max) - float(dense.singular_values[0])) < 1e-8 * float(dense.singular_values[0])
    assert float(est.resolved) == 1.0 and float(est.sem) < 1.0
    assert abs(float(est.rank) - int(dense.rank)) <= max(4 * float(est.sem), 0.5)
    # too few Lanczos steps for the conditioning of J (s_max / s_rank ~ 400): flagged, not silently trusted
    short = local_dimension_matfree(mlp, theta, x, key=jax.random.key(0), num_matvecs=10, num_samples=2)
    assert float(short.resolved) < 1.0


def test_local_dimension_along_a_trajectory_and_problem_sample():
    import optax

    from landscape.problem.datasets import Supervised

    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3))
    problem = Supervised(ls.MLP((4, 3), outputs=2), x, np.eye(2)[rng.integers(0, 2, 30)])
    theta0 = ls.GaussianInit(1.0).sample(jax.random.key(1), problem)
    flow = ls.OptaxFlow(optax.sgd, learning_rate=0.1, steps=20, n_snapshots=3, save_params=True)
    traj = ls.run_flow(problem, flow, theta0)
    along_fn = jax.jit(lambda thetas: local_dimension_along(problem, thetas))
    along = along_fn(traj.params)
    assert along.rank.shape == (3,)
    J = jacobian(problem, theta0)
    assert J.shape == (60, 4 * 3 + 3 * 4 + 3 * 2)
    assert int(along.rank[0]) == int(np.linalg.matrix_rank(np.asarray(J)))
    nan_params = jax.tree.map(lambda v: v.at[-1].set(jnp.nan), traj.params)
    assert int(along_fn(nan_params).rank[-1]) == -1
    bound, n_dead = int(along.bound[0]), int(along.n_dead[0])
    assert int(along.rank[0]) <= bound and (n_dead > 0 or bound == J.shape[1] - 7)


def test_needs_a_sample():
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
    with pytest.raises(ValueError, match="needs a sample"):
        local_dimension(problem, {"w": jnp.eye(3)[:2], "a": jnp.ones(2)})
