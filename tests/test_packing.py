"""Packed flows (landscape.flow.packing): segments with the running lanes re-packed give the flows of one solve."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import landscape as ls
from landscape.flow import CONVERGED, RUNNING
from landscape.flow.packing import buckets, run_flows_packed


def test_buckets_shrink_by_four_down_to_the_minimum():
    assert buckets(64) == [64, 16]
    assert buckets(1000) == [1000, 250, 63, 16]
    assert buckets(12, min_bucket=2) == [12, 3]
    assert buckets(5) == [5]
    assert buckets(64, min_bucket=1) == [64, 16, 4, 1]


def _mixed_lanes(key):
    """A smooth (tanh, no ReLU kinks) sample problem and 12 initialisations of mixed scales: lanes that finish in a
    few dozen steps and lanes that need hundreds."""
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2, activation=ls.Tanh()),
                                ls.TwoLayer(width=2, activation=ls.Tanh()),
                                ls.SampleLoss.gaussian(n=32, d=3, key=jax.random.key(0)))
    scales = jnp.array([1.0, 0.3, 0.05, 1.0, 0.01, 0.5, 1.0, 0.2, 0.02, 1.0, 0.7, 0.1])
    keys = jax.random.split(key, len(scales))
    return problem, jax.vmap(lambda k, s: ls.GaussianInit(s).sample(k, problem))(keys, scales)


def test_packed_segments_reproduce_one_solve_and_save_lane_steps():
    problem, theta0 = _mixed_lanes(jax.random.key(1))
    n = 12
    one = ls.GradientFlow(t_max=2e3, grad_tol=1e-8, max_steps=20_000, segment_steps=0)
    seg = ls.GradientFlow(t_max=2e3, grad_tol=1e-8, max_steps=20_000, segment_steps=16)
    ref, ref_stats = run_flows_packed(problem, one, theta0)
    got, stats = run_flows_packed(problem, seg, theta0, min_bucket=2)

    status = np.asarray(got.status)
    assert (status == np.asarray(ref.status)).all() and not (status == RUNNING).any()
    conv = status == CONVERGED
    assert 2 <= conv.sum() < n, "a mix of converged lanes and lanes that reach t_max"
    for leaf_ref, leaf in zip(jax.tree.leaves(ref.theta), jax.tree.leaves(got.theta), strict=True):
        assert np.max(np.abs(np.asarray(leaf_ref) - np.asarray(leaf))) <= 1e-5  # the same end points
    assert np.all(np.asarray(got.grad_norm_final)[conv] <= 1e-8)
    assert np.allclose(np.asarray(got.t_final)[~conv], 2e3)
    # snapshots: the same curve where both have one (the planned times are shared)
    a, b = np.asarray(ref.loss), np.asarray(got.loss)
    both = np.isfinite(a) & np.isfinite(b)
    assert both[:, 0].all() and both.sum() >= 0.9 * np.isfinite(a).sum()
    assert np.max(np.abs(a - b)[both] / np.maximum(np.abs(a[both]), 1e-12)) <= 1e-5
    # step counts differ only by the restarts (a few per segment), and the accounting adds up
    steps, steps_ref = np.asarray(got.n_steps), np.asarray(ref.n_steps)
    assert np.all(np.abs(steps - steps_ref) <= 0.25 * steps_ref + 8)
    assert stats.useful == steps.sum() and stats.segments > 1 and stats.shapes == (12, 3)
    assert ref_stats.fraction < stats.fraction <= 1.0


def test_optax_segments_reproduce_the_single_loop():
    # plain gd and adam (an optimiser state beyond theta) in segments of 40 updates, lanes re-packed: every lane
    # takes exactly the updates of OptaxFlow.run, so step counts and statuses are equal and end points and
    # snapshots equal up to rounding (XLA vectorises a batch of 3 lanes differently from one of 12)
    problem, theta0 = _mixed_lanes(jax.random.key(2))
    n = 12
    for opt, lr, steps in [(optax.sgd, 1.0, 1600), (optax.adam, 0.02, 1700)]:  # lanes stop after 580-1810 updates
        one = ls.OptaxFlow(opt, learning_rate=lr, steps=steps, grad_tol=1e-6, segment_steps=0, n_snapshots=16)
        seg = ls.OptaxFlow(opt, learning_rate=lr, steps=steps, grad_tol=1e-6, segment_steps=40, n_snapshots=16)
        ref, ref_stats = run_flows_packed(problem, one, theta0)
        got, stats = run_flows_packed(problem, seg, theta0, min_bucket=2)
        status = np.asarray(got.status)
        assert not (status == RUNNING).any()
        conv = status == CONVERGED
        assert 2 <= conv.sum() < n, f"{opt.__name__}: a mix of lanes that stop early and lanes that run to the end"
        np.testing.assert_array_equal(status, np.asarray(ref.status))
        np.testing.assert_array_equal(np.asarray(got.n_steps), np.asarray(ref.n_steps))
        for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got), strict=True):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-15)  # NaN blanks alike
        assert stats.useful == ref_stats.useful == np.asarray(got.n_steps).sum()
        assert stats.segments > 1 and stats.shapes == (12, 3) and ref_stats.fraction < stats.fraction <= 1.0


def test_packed_polishing_reaches_the_points_of_one_loop():
    """Polishing in segments of 3 passes, with the points still polishing re-packed, gives every point what one
    vmapped loop gives (a segment boundary changes nothing; a smaller batch may round differently, by ~1e-14), at
    the points this tool studies, and computes fewer passes."""
    from landscape.flow import polish_batch
    from landscape.flow.packing import polish_packed

    d = 4
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=d, width=d), ls.TwoLayer(width=d), ls.PopulationLoss(),
                                output_weights="teacher")
    eye = jnp.eye(d)
    near = eye[None] + 1e-3 * jax.random.normal(jax.random.key(0), (10, d, d))  # a pass or three each
    special = jnp.stack([eye.at[1].set(eye[0]),  # coincident
                         eye.at[1].set(-eye[0]),  # antiparallel
                         eye.at[2].set(0.0),  # a zero neuron
                         eye.at[1].set(2.0 * eye[0]),  # parallel
                         jnp.zeros((d, d))])  # all neurons at zero
    far = eye[None] + 0.8 * jax.random.normal(jax.random.key(1), (1, d, d))  # a long polish
    thetas = {"w": jnp.concatenate([near, special, far])}
    n = thetas["w"].shape[0]
    ref = polish_batch(problem, thetas, tol=1e-10, max_iter=40)
    got, stats = polish_packed(problem, thetas, tol=1e-10, max_iter=40, segment=3, min_bucket=2)
    for name in ("n_iter", "converged"):
        np.testing.assert_array_equal(np.asarray(getattr(got, name)), np.asarray(getattr(ref, name)), err_msg=name)
    np.testing.assert_allclose(np.asarray(got.theta["w"]), np.asarray(ref.theta["w"]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(got.loss), np.asarray(ref.loss), rtol=1e-10, atol=1e-30)
    assert np.all(np.asarray(got.grad_norm)[:10] <= 1e-10)
    its = np.asarray(got.n_iter) + 1  # passes: the first evaluates the start
    assert np.isfinite(np.asarray(got.grad_norm)).all()
    assert stats.useful == its.sum() and stats.segments == -(-its.max() // 3)
    assert stats.shapes[0] == n and len(stats.shapes) > 1, "the slow points finished in a smaller bucket"
    assert stats.computed < n * its.max()
    one, one_stats = polish_packed(problem, thetas, tol=1e-10, max_iter=40, segment=0)
    np.testing.assert_array_equal(np.asarray(one.theta["w"]), np.asarray(ref.theta["w"]))
    assert one_stats.computed == n * its.max() and one_stats.segments == 1
