"""Slices, zero-loss paths and nudged elastic bands (landscape.analysis.paths, issue 11).

One problem family throughout (ReLU, exact population loss, x ~ N(0, I_2), orthonormal teacher of width r* = 2 with
unit output weights), so each jitted function compiles once per student width: width 3 for the zero-loss path and
the slices, width 2 for the NEB (the same shapes as ``landscape figure connectivity --quick``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import landscape as ls
from landscape.analysis.paths import (
    NEB,
    NotOnManifold,
    grid_axis,
    hessian_directions,
    loss_slice,
    neb,
    plane_through,
    random_direction,
    zero_loss_path,
)

D = 2


def _problem(m):
    return ls.TeacherStudent(ls.Teacher.orthonormal(d=D, width=2, key=jax.random.PRNGKey(0)),
                             ls.TwoLayer(width=m, activation=ls.ReLU()), ls.PopulationLoss())


@pytest.fixture(scope="module")
def wide():
    return _problem(3)


def _teacher(problem):
    return np.asarray(problem.teacher_params["w"], float), np.asarray(problem.teacher_params["a"], float)


def _net(theta, x):
    """numpy two-layer ReLU net on inputs x (n, d): an evaluation independent of the library."""
    return np.maximum(x @ np.asarray(theta["w"], float).T, 0.0) @ np.asarray(theta["a"], float)


def test_zero_loss_path_between_permutations(wide):
    """Done-when: the two permutations of a width-2 teacher in a width-3 student, dense max accurate loss <= 1e-25."""
    V, c = _teacher(wide)
    a = {"w": jnp.asarray(np.vstack([V, [0.6, -0.8]])), "a": jnp.asarray(np.append(c, 0.0))}
    b = {"w": jnp.asarray(np.vstack([V[::-1], [-1.0, 0.3]])), "a": jnp.asarray(np.append(c[::-1], 0.0))}
    path = zero_loss_path(wide, a, b, n_per_segment=17)
    assert path.certified and path.max_loss <= 1e-25
    assert np.all(path.vertex_grad_norm <= 1e-10) and np.all(path.grad_norm <= 1e-10)
    assert path.loss.size == 17 * path.n_segments and np.all(np.isfinite(path.loss))
    # exact minima need no snapping: the path starts and ends at the given points
    for k in a:
        np.testing.assert_array_equal(path.vertices[k][0], a[k])
        np.testing.assert_array_equal(path.vertices[k][-1], b[k])
    # a swap through one spare neuron: three relocations (zero-output move + split-ratio move) and a final move
    assert path.n_segments == 7
    assert sum("split ratio" in mv for mv in path.moves) == 3
    assert all(sub.startswith("global|r*=2|") for sub in path.vertex_subspaces + path.segment_subspaces)
    assert {sub.split("#")[0] for sub in path.segment_subspaces} == {
        "global|r*=2|n=1,1|z=1|d=0", "global|r*=2|n=2,1|z=0|d=0", "global|r*=2|n=1,2|z=0|d=0"}
    np.testing.assert_allclose(path.length, path.segment_lengths.sum())
    # independent check: along every segment the network computes the teacher's function (random inputs)
    x = np.random.default_rng(0).normal(size=(500, D))
    y = _net({"w": V, "a": c}, x)
    for i in range(path.n_segments):
        for t in (0.25, 0.5, 0.9):
            th = {k: (1 - t) * v[i] + t * v[i + 1] for k, v in path.vertices.items()}
            np.testing.assert_allclose(_net(th, x), y, atol=1e-13)


def test_zero_loss_path_from_split_rescaled_and_dead_neurons(wide):
    """Split groups with rescaled members (kappa != 1), dead neurons and an inexact end point are handled."""
    V, c = _teacher(wide)
    # teacher neuron 0 split over neurons 1 and 2 with scales 0.5 and 2 (0.5 * 0.8 + 2 * 0.3 = 1)
    b = {"w": jnp.asarray(np.vstack([V[1], 0.5 * V[0], 2.0 * V[0]])),
         "a": jnp.asarray(np.array([c[1], 0.8 * c[0], 0.3 * c[0]]))}
    # a dead neuron (w = 0) with a nonzero output weight, and a tiny perturbation off the manifold
    a = {"w": jnp.asarray(np.vstack([V[0], V[1] + 1e-13, np.zeros(D)])), "a": jnp.asarray(np.append(c, 0.7))}
    path = zero_loss_path(wide, a, b, n_per_segment=9)
    assert path.certified and path.max_loss <= 1e-25
    assert any(mv.startswith("dead neurons [2]") for mv in path.moves)
    assert 0 < path.snap["from_distance"] < 1e-12 and path.snap["to_distance"] == 0.0
    assert path.vertex_subspaces[-1].split("#")[0] in ("global|r*=2|n=2,1|z=0|d=0", "global|r*=2|n=1,2|z=0|d=0")


def test_zero_loss_path_refusals(wide):
    V, c = _teacher(wide)
    bad = {"w": jnp.asarray(np.vstack([V, [0.6, -0.8]])), "a": jnp.asarray(np.append(c, 0.5))}  # not zero-output
    good = {"w": jnp.asarray(np.vstack([V, [0.6, -0.8]])), "a": jnp.asarray(np.append(c, 0.0))}
    with pytest.raises(NotOnManifold, match="neuron 2 matches no teacher neuron"):
        zero_loss_path(wide, bad, good)
    narrow = _problem(2)
    with pytest.raises(NotOnManifold, match="isolated global minima"):
        zero_loss_path(narrow, {"w": jnp.asarray(V), "a": jnp.asarray(c)},
                       {"w": jnp.asarray(V[::-1]), "a": jnp.asarray(c[::-1])})
    frozen = ls.TeacherStudent(wide.teacher, ls.TwoLayer(width=3, activation=ls.ReLU()), output_weights=1.0)
    with pytest.raises(ValueError, match="trained output weights"):
        zero_loss_path(frozen, {"w": good["w"]}, {"w": good["w"]})


def test_neb_finds_certified_index1_saddle():
    """Done-when: NEB between the two global minima of a width-2 student; the polished top image is a certified
    index-1 saddle, the width-1 critical point embedded by duplication (Şimşek et al. 2021)."""
    narrow = _problem(2)
    V, c = _teacher(narrow)
    a, b = {"w": jnp.asarray(V), "a": jnp.asarray(c)}, {"w": jnp.asarray(V[::-1]), "a": jnp.asarray(c[::-1])}
    res = neb(narrow, a, b, NEB(n_images=15))
    sd = res.saddle
    assert sd.certified and sd.grad_norm <= 1e-10
    assert sd.kind == "saddle" and sd.index == 1 and int(np.sum(sd.eigenvalues < -sd.zero_tol_abs)) == 1
    assert sd.sym_class == "symmetry_induced" and sd.reduced_width == 1 and "|n=2|" in sd.subspace_label
    # the top of the band is the saddle; the barrier is the same from both (permuted) minima
    assert res.barrier_from > 0.01 and res.barrier_from == pytest.approx(res.barrier_to, abs=1e-12)
    assert float(res.loss.max()) == pytest.approx(sd.loss, rel=1e-6)
    assert res.loss[0] <= 1e-25 and res.loss[-1] <= 1e-25
    # the two neurons coincide at the saddle (duplication), and its loss matches a Monte-Carlo estimate
    w = sd.theta["w"]
    np.testing.assert_allclose(w[0] / np.linalg.norm(w[0]), w[1] / np.linalg.norm(w[1]), atol=1e-6)
    x = np.random.default_rng(1).normal(size=(400_000, D))
    mc = 0.5 * np.mean((_net(sd.theta, x) - _net(a, x)) ** 2)
    assert mc == pytest.approx(sd.loss, rel=2e-2)


def test_slices_reproduce_the_point_and_the_loss(wide):
    V, c = _teacher(wide)
    theta = {"w": jnp.asarray(np.vstack([V, [0.6, -0.8]]) + 0.05), "a": jnp.asarray(np.append(c, 0.2))}
    dirs, lam = hessian_directions(wide, theta, ["most_negative", "largest"])
    assert lam[0] <= lam[1] and np.allclose(np.linalg.norm(dirs, axis=1), 1.0)
    s = loss_slice(wide, theta, dirs, span=0.5, n=7)
    assert s.loss.shape == (7, 7) and s.origin == (3, 3) and s.alphas[3] == 0.0 and s.betas[3] == 0.0
    loss = jax.jit(ls.problem.loss_accurate)
    # the grid's origin is theta itself; its loss agrees with another compiled evaluation to the last bits
    assert s.origin_loss == pytest.approx(float(loss(wide, theta)), rel=1e-14, abs=0)
    x0, unravel = ravel_pytree(theta)
    direct = float(loss(wide, unravel(x0 + s.alphas[1] * dirs[0] + s.betas[5] * dirs[1])))
    assert s.loss[1, 5] == pytest.approx(direct, rel=1e-13)
    # filter-normalised random direction: each neuron's row has the norm of theta's row, a has |a|
    d = np.asarray(random_direction(theta, key=jax.random.key(3)))
    dd = unravel(jnp.asarray(d))
    np.testing.assert_allclose(np.linalg.norm(dd["w"], axis=1), np.linalg.norm(theta["w"], axis=1))
    np.testing.assert_allclose(np.linalg.norm(dd["a"]), np.linalg.norm(theta["a"]))
    line = loss_slice(wide, theta, d[None] / np.linalg.norm(d), span=0.2, n=5)
    assert line.ndim == 1 and line.origin_loss == s.origin_loss
    # the plane through three points: the marked points' losses are the losses at those points
    p1 = {"w": jnp.asarray(np.vstack([V, [0.6, -0.8]])), "a": jnp.asarray(np.append(c, 0.0))}
    p2 = {"w": jnp.asarray(np.vstack([V[::-1], [0.6, -0.8]])), "a": jnp.asarray(np.append(c[::-1], 0.0))}
    pd, coords = plane_through(theta, p1, p2)
    plane = loss_slice(wide, theta, pd, n=7, ranges=[(-0.5, 3.0), (-0.5, 3.0)], marks={"p1": coords[1],
                                                                                         "p2": coords[2]})
    assert plane.mark_loss["p1"] <= 1e-25 and plane.mark_loss["p2"] <= 1e-25
    assert plane.mark_loss["origin"] == plane.origin_loss
    with pytest.raises(ValueError, match="on one line"):
        plane_through(theta, p1, jax.tree.map(lambda u, v: 2 * v - u, theta, p1))


def test_grid_axis_contains_the_origin_exactly():
    for lo, hi, n in [(-1.0, 1.0, 41), (-0.3, 2.7, 20), (0.0, 1.0, 3)]:
        coords, i0 = grid_axis(lo, hi, n)
        assert coords[i0] == 0.0 and len(coords) == n
        assert coords[0] <= lo + 1e-12 + (hi - lo) / (n - 1) and coords[-1] >= hi - (hi - lo) / (n - 1) - 1e-12
    with pytest.raises(ValueError):
        grid_axis(0.5, 1.0, 5)
