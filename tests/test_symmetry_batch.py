"""The batched symmetry analysis (issue 13, item 3) gives the per-point reference's columns and values.

One mixed batch per problem, Hessians from one jitted vmap each: global minima (teacher, split neurons, a
zero-output neuron, a loose split at zero loss), points with coincident, parallel (rescaled), antiparallel, zero
(w_j = 0) and dead neurons (ReLU inactive on the sample), non-critical points (saddles, irreducible), the origin,
and a non-finite point (labelled, the batch goes on). Columns are compared with :func:`analyze_point` point by
point: ints and strings equal, floats to rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape.analysis.hessian import hessians
from landscape.analysis.symmetry import Tolerances, batch, teacher_reduction
from landscape.analysis.symmetry.analyze import COLUMNS, FILL, analyze_point, analyze_points
from landscape.analysis.symmetry.batch import reduce_batch
from landscape.analysis.symmetry.reduce import reduce_two_layer

ZERO_TOL, GLOBAL_TOL = 1e-7, 1e-20


def _problem(kind):
    if kind == "relu_population":  # trainable a, p = 1 homogeneous: splits, rescalings, level sets
        return ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=4, activation=ls.ReLU()))
    if kind == "relu_sample_bias":  # dead units on the sample, biases
        teacher = ls.Teacher.gaussian(d=3, width=2, key=jax.random.key(3), bias=True)
        return ls.TeacherStudent(teacher, ls.TwoLayer(width=4, activation=ls.ReLU(), bias=True),
                                 ls.SampleLoss.gaussian(n=12, d=3, key=jax.random.key(4)))
    if kind == "tanh_sample":  # odd: sign flips
        return ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2, activation=ls.Tanh()),
                                 ls.TwoLayer(width=4, activation=ls.Tanh()),
                                 ls.SampleLoss.gaussian(n=12, d=3, key=jax.random.key(5)))
    # frozen output weights (the Safran-Shamir setting of the benchmark): norm splits
    return ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=3, activation=ls.ReLU()),
                             ls.SampleLoss.gaussian(n=12, d=3, key=jax.random.key(6)), output_weights="teacher")


def _points(problem, rng):
    """A mixed batch of trainable dicts (leading axis) for the problem's shapes."""
    shapes = problem.trainable_shapes
    m = shapes["w"][0]
    tp = {k: np.asarray(v, float) for k, v in problem.teacher_params.items()}
    tw, ta = tp["w"], tp["a"]
    pts = []

    def add(w, a=None, b=None):
        th = {"w": np.asarray(w, float)}
        if "a" in shapes:
            th["a"] = np.asarray(a, float)
        if "b" in shapes:
            th["b"] = np.zeros(m) if b is None else np.asarray(b, float)
        pts.append(th)

    r = tw.shape[0]
    tb = tp.get("b", np.zeros(r))
    pad = lambda x, fill: np.concatenate([x, np.repeat(fill[None], m - len(x), axis=0)])  # noqa: E731
    # teacher with neuron 1 split (and a zero-output neuron when m > r + 1)
    w = pad(tw, tw[-1]); a = np.concatenate([ta, np.zeros(m - r)]); a[r - 1], a[r] = 0.3 * ta[-1], 0.7 * ta[-1]  # noqa: E702
    add(w, a, pad(tb, tb[-1]))
    loose = w.copy()  # the split members moved apart with sum_j a_j du_j = 0: loss ~ 4e-11, merged at u_tol_loose
    loose[r - 1, -1] += 0.7 * 2e-3
    loose[r, -1] -= 0.3 * 2e-3
    add(loose, a, pad(tb, tb[-1]))
    # a zero-output neuron with a random incoming vector, and w_j = 0 neurons
    w2 = pad(tw, rng.standard_normal(tw.shape[1])); a2 = np.concatenate([ta, np.zeros(m - r)])  # noqa: E702
    add(w2, a2, pad(tb, np.array(0.3)))
    w3 = w2.copy(); w3[-1] = 0.0  # noqa: E702
    add(w3, a2 + np.r_[np.zeros(m - 1), 0.5], pad(tb, np.array(0.0)))
    # parallel (rescaled) and antiparallel pairs, coincident pairs, the origin
    w4 = rng.standard_normal((m, tw.shape[1])); w4[1] = 2.0 * w4[0]; w4[2] = -w4[0]  # noqa: E702
    add(w4, rng.standard_normal(m), rng.standard_normal(m) * 0.1)
    w5 = rng.standard_normal((m, tw.shape[1])); w5[-1] = w5[0]  # noqa: E702
    add(w5, rng.standard_normal(m))
    add(np.zeros((m, tw.shape[1])), np.zeros(m))
    # dead on the sample (biases very negative), random non-critical points
    add(rng.standard_normal((m, tw.shape[1])), rng.standard_normal(m), np.r_[-50.0, rng.standard_normal(m - 1)])
    for _ in range(3):
        add(rng.standard_normal((m, tw.shape[1])), rng.standard_normal(m), rng.standard_normal(m))
    # zero-output neurons at a nonzero residual (level sets; u_j = 0 as well: no incoming direction)
    w6, a6 = rng.standard_normal((m, tw.shape[1])), rng.standard_normal(m)
    a6[-1] = 0.0
    add(w6, a6, rng.standard_normal(m))
    w6 = w6.copy()
    w6[-1] = 0.0
    add(w6, a6, np.r_[rng.standard_normal(m - 1), 0.0])
    # a non-finite point
    add(np.full((m, tw.shape[1]), np.nan), np.ones(m))
    return {k: np.stack([p[k] for p in pts]) for k in pts[0]}


def _reference_rows(problem, thetas, losses, hs):
    teacher = teacher_reduction(problem, Tolerances())
    rows = []
    for i in range(len(losses)):
        th = {k: v[i] for k, v in thetas.items()}
        if not (np.isfinite(losses[i]) and np.all(np.isfinite(hs[i]))
                and all(np.all(np.isfinite(v)) for v in th.values())):
            rows.append({**FILL, "kind_refined": "diverged"})
            continue
        rows.append(analyze_point(problem, th, loss=losses[i], hessian=hs[i], zero_tol=ZERO_TOL,
                                  global_loss_tol=GLOBAL_TOL, teacher=teacher))
    return rows


def _assert_same(columns, rows, names):
    for c in names:
        ref = [row[c] for row in rows]
        got = list(columns[c])
        if isinstance(FILL.get(c), float):
            np.testing.assert_allclose(np.asarray(got, float), np.asarray(ref, float), rtol=1e-9, atol=1e-13,
                                       equal_nan=True, err_msg=c)
        else:
            assert [str(v) for v in got] == [str(v) for v in ref], c


@pytest.mark.parametrize("kind", ["relu_population", "relu_sample_bias", "tanh_sample", "frozen_a"])
def test_batched_columns_equal_per_point_reference(kind, monkeypatch):
    problem = _problem(kind)
    thetas = _points(problem, np.random.default_rng(0))
    jt = {k: jnp.asarray(v) for k, v in thetas.items()}
    losses = np.asarray(jax.jit(jax.vmap(problem.loss_accurate))(jt))
    hs = np.asarray(hessians(problem, jt))
    if kind == "tanh_sample":  # chunks of 3 points (large P): the same rows
        monkeypatch.setattr(batch, "CHUNK_ELEMENTS", 3 * hs.shape[1] ** 2)
    cols, summary = analyze_points(problem, thetas, losses=losses, grad_norms=np.zeros(len(losses)), hessians=hs,
                                   zero_tol=ZERO_TOL, global_loss_tol=GLOBAL_TOL)
    rows = _reference_rows(problem, thetas, losses, hs)
    _assert_same(cols, rows, (*COLUMNS, "kind_refined"))
    classes = set(cols["sym_class"])
    assert cols["kind_refined"][-1] == "diverged" and cols["sym_class"][-1] == "not_analyzed"
    assert "global_minimum" in classes and "symmetry_induced" in classes
    assert sum(summary["classes"].values()) == len(losses)
    if kind == "relu_population":
        assert bool(cols["loose_merge"][1]) and int(cols["n_zero_neurons"][2]) == 2
        assert "saddle" in set(cols["kind_refined"]) and "level set" in ";".join(cols["null_directions"])
        assert any("|opp(" in p for p in cols["partition"])
    if kind == "relu_sample_bias":
        assert int(cols["n_dead_neurons"][7]) >= 1 and "dead in" in cols["null_directions"][7]
    if kind not in ("relu_sample_bias", "frozen_a"):
        return
    # the analyzer (one call_batch through the engine) gives the same columns, reusing the Hessian analyzer's
    # eigendecomposition (no eigh on the host); the NaN point is labelled
    points = ls.Point(theta=jt, loss=jnp.asarray(losses), grad_norm=jnp.zeros(len(losses)),
                      certified=jnp.ones(len(losses), bool), finite=jnp.ones(len(losses), bool))

    def no_host_eigh(*args, **kwargs):
        raise AssertionError("the symmetry analysis diagonalised again on the host")

    monkeypatch.setattr(np.linalg, "eigh", no_host_eigh)
    res = ls.run_analyzers([ls.HessianSpectrum(), ls.SymmetryAnalysis(ZERO_TOL, GLOBAL_TOL)], problem, points)
    n = len(losses) - 1
    _assert_same({c: v[:n] for c, v in res.columns.items()}, rows[:n], COLUMNS)
    assert list(res.status[:n]) == ["ok"] * n and "symmetry" in res.status[-1]


def test_reduce_batch_equals_reduce_two_layer(monkeypatch):
    """Groups, canonical order, values, zero/dead sets and antiparallel pairs agree with the per-point reduction."""
    rng = np.random.default_rng(1)
    n, m, d = 64, 6, 3
    monkeypatch.setattr(batch, "CHUNK_ELEMENTS", 20 * m * m * (d + 1))  # chunks of 20 points
    for act in (ls.ReLU(), ls.Tanh(), ls.LeakyReLU(0.1)):
        w, a = rng.standard_normal((n, m, d)), rng.standard_normal((n, m))
        w[:, 1] = w[:, 0] * rng.choice([1.0, 2.0, -1.0], size=(n, 1))
        w[:20, 2] = w[:20, 3] + 1e-5
        a[10:30, 4] = 0.0
        w[30:40, 5] = 0.0
        w[40:50, 2], a[40:50, 2] = -w[40:50, 0], -a[40:50, 0]
        full = {"w": w, "a": a, "b": rng.standard_normal((n, m)) * (rng.random((n, m)) < 0.5)}
        x = rng.standard_normal((8, d))
        for i, red in enumerate(reduce_batch(full, act, x=x)):
            ref = reduce_two_layer({k: v[i] for k, v in full.items()}, act, x=x)
            assert (red.groups, red.zero, red.dead, red.opposite, red.spread) == (
                ref.groups, ref.zero, ref.dead, ref.opposite, ref.spread)
            for f in ("group_of", "kappa", "u_hat", "A"):
                np.testing.assert_array_equal(getattr(red, f), getattr(ref, f))
