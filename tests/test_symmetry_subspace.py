"""Predicted subspaces, null-space explanation, embedding and split scans, analyze_points (issue 3, Done-when)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from test_symmetry_reduce import make_problem

import landscape  # noqa: F401  (x64)
from landscape.analysis.hessian import hessian_matrix
from landscape.analysis.symmetry import (
    analyze_points,
    check_subspace,
    embed,
    explain_null_space,
    permute,
    problem_with_width,
    random_symmetry,
    reduce_two_layer,
    split_scan,
)
from landscape.flow.polish import polish

ACT = "sigmoid4_softplus"  # smooth, no sign or scaling symmetry: only the generic predictions apply


def _grad_norm(P, th):
    return float(jnp.linalg.norm(ravel_pytree(jax.grad(P.loss)({k: jnp.asarray(v) for k, v in th.items()}))[0]))


_hessian_jit = jax.jit(hessian_matrix)


def _hess(P, th):
    return np.asarray(_hessian_jit(P, {k: jnp.asarray(v) for k, v in th.items()}))


@pytest.fixture(scope="module")
def narrow_critical():
    """A critical point of the width-1 net (teacher width 2): polished to |grad| ~ 1e-16."""
    P2, _ = make_problem(ACT, r_star=2, m=2)
    P1 = problem_with_width(P2, 1)
    start = {"w": P2.teacher_params["w"][:1], "a": P2.teacher_params["a"][:1]}  # best width-1 fit is nearby
    res = jax.jit(lambda t: polish(P1, t, tol=1e-15, max_iter=100))(start)
    assert float(res.grad_norm) < 1e-14 and float(res.loss) > 1e-6
    return P2, P1, {k: np.asarray(v) for k, v in res.theta.items()}


def test_embedded_global_minimum_class_label_and_dimensions():
    P2, _ = make_problem(ACT, r_star=2, m=2)
    P = problem_with_width(P2, 4)
    tp = {k: np.asarray(v) for k, v in P.teacher_params.items()}
    th = embed(tp, [1, 0, -1, 1], [0.3, 1.0, 0.0, 0.7], zero_incoming=np.array([[0.4, -0.3, 0.2]]))
    assert _grad_norm(P, th) <= 1e-12
    H = _hess(P, th)
    ex = explain_null_space(P, th, H, 1e-7, global_loss_tol=1e-20)
    d = 3
    assert ex["sym_class"] == "global_minimum" and ex["subspace_label"] == "global|r*=2|n=1,2|z=1|d=0"
    # predicted: 1 split ratio + d free incoming entries of the zero neuron
    assert ex["predicted_dim"] == 1 + d == ex["null_dim_explained"]
    # zero loss: H = J^T J; null J = (2 - 1)(d + 1) + d predicted exactly
    assert ex["jacobian_null_pred"] == (d + 1) + d == ex["null_dim_measured"]
    assert ex["kind_refined"] == "minimum" and ex["tangent_curvature"] < 1e-12
    red = reduce_two_layer(th, P.student.activation, x=P.x)
    chk = check_subspace(P, th, red, residual_zero=True, rng=np.random.default_rng(0), n=6)
    assert chk["max_dloss"] < 1e-20 and chk["max_grad_norm"] < 1e-11


@pytest.mark.parametrize("m,assign", [(2, [0, 0]), (3, [0, 0, 0])])
def test_embedded_saddles_from_narrow_critical_point(narrow_critical, m, assign):
    P2, P1, th1 = narrow_critical
    P = problem_with_width(P2, m)
    rng = np.random.default_rng(m)
    beta = rng.uniform(0.2, 1.0, m)
    th = embed(th1, assign, beta / beta.sum())
    assert _grad_norm(P, th) <= 1e-12
    assert abs(float(P.loss(th)) - float(P1.loss(th1))) < 1e-14
    ex = explain_null_space(P, th, _hess(P, th), 1e-7, global_loss_tol=1e-20)
    assert ex["sym_class"] == "symmetry_induced" and ex["subspace_label"].startswith("sym|r=1|")
    assert ex["predicted_dim"] == m - 1 == ex["null_dim_explained"]
    red = reduce_two_layer(th, P.student.activation, x=P.x)
    chk = check_subspace(P, th, red, residual_zero=False, rng=rng, n=6)
    assert chk["max_dloss"] < 1e-13 and chk["max_grad_norm"] < 1e-11


def test_split_scan_index_matches_prediction(narrow_critical):
    _, P1, th1 = narrow_critical
    lams = np.array([-0.5, -0.1, 0.2, 0.5, 0.8, 1.3])
    scan = split_scan(P1, th1, 0, lams, zero_tol=1e-7)
    assert np.all(scan["grad_norm"] <= 1e-12)
    assert np.ptp(scan["loss"]) < 1e-14
    np.testing.assert_array_equal(scan["index"], scan["index_pred"])
    inside = (lams > 0) & (lams < 1)
    if np.all(scan["A_eigs"] > 0):
        assert np.all(scan["index"][inside] == 0) and np.all(scan["index"][~inside] > 0)


def test_analyze_points_batch_columns_and_permutation_stable_labels(narrow_critical):
    P2, _, th1 = narrow_critical
    P = problem_with_width(P2, 3)
    tp = {k: np.asarray(v) for k, v in P.teacher_params.items()}
    rng = np.random.default_rng(7)
    pts = [embed(tp, [0, 1, 0], [0.4, 1.0, 0.6]), embed(th1, [0, 0, 0], [0.2, 0.3, 0.5]),
           embed(tp, [1, -1, 0], zero_incoming=rng.standard_normal((1, 3)))]
    pts.append(permute(pts[0], [1, 0, 2]))  # a permuted copy of point 0
    batch = {k: np.stack([p[k] for p in pts]) for k in pts[0]}
    losses = np.array([float(P.loss(p)) for p in pts])
    cols, summary = analyze_points(P, batch, losses=losses, grad_norms=np.zeros(4), hessians=None, zero_tol=1e-7,
                                   global_loss_tol=1e-20)
    assert all(len(v) == 4 for v in cols.values())
    assert list(cols["sym_class"]) == ["global_minimum", "symmetry_induced", "global_minimum", "global_minimum"]
    assert cols["subspace_label"][0] == cols["subspace_label"][3] != cols["subspace_label"][2]
    assert cols["subspace_id"][0] != cols["subspace_id"][3]  # a permuted copy lies in a different subspace
    assert list(cols["reduced_width"]) == [2, 1, 2, 2] and list(cols["predicted_dim"]) == [1, 2, 3, 1]
    assert np.all(cols["null_dim_explained"] == cols["predicted_dim"])
    assert np.all(cols["dist_to_predicted"] < 1e-12)
    assert summary["classes"]["global_minimum"] == 3 and summary["T"] == 12 and summary["distinct_labels"] == 3
    assert set(cols["kind_refined"]) <= {"minimum", "saddle", "degenerate"}


def test_frozen_output_weights_remove_split_freedom():
    """Frozen a: a duplicated neuron has no split ratio (predicted 0) but null J = (n - 1) D at zero loss."""
    P, _ = make_problem(ACT, r_star=1, m=2, train_a=False, frozen=0.5)
    v = np.asarray(P.teacher_params["w"])  # teacher a = 1, student a = (0.5, 0.5)
    th = {"w": np.concatenate([v, v])}
    assert _grad_norm(P, th) <= 1e-12 and float(P.loss(th)) < 1e-28
    ex = explain_null_space(P, th, _hess(P, th), 1e-7)
    assert ex["sym_class"] == "global_minimum" and ex["predicted_dim"] == 0
    assert ex["jacobian_null_pred"] == 3 == ex["null_dim_measured"] and ex["kind_refined"] == "minimum"


def test_relu_rescaling_directions_are_null():
    """ReLU (sample loss): each live neuron adds a rescaling direction, explained in the Hessian null space."""
    P2, _ = make_problem("relu", r_star=2, m=2, n=300)
    P = problem_with_width(P2, 3)
    tp = {k: np.asarray(v) for k, v in P.teacher_params.items()}
    th = embed(tp, [0, 1, 0], [0.5, 1.0, 0.5])
    th = random_symmetry(np.random.default_rng(1), th, P.student.activation)
    ex = explain_null_space(P, th, _hess(P, th), 1e-7)
    assert ex["sym_class"] == "global_minimum"
    assert ex["predicted_dim"] == 1 + 3 == ex["null_dim_explained"]  # 1 split + 3 rescalings
    assert ex["jacobian_null_pred"] == ex["null_dim_measured"]


def test_near_zero_loss_split_uses_loose_merge_and_nan_points_do_not_crash(tmp_path):
    """Members of a split group 2e-3 apart (loss ~ spread^4): a global minimum via the loose merge; NaN rows skip."""
    P2, _ = make_problem(ACT, r_star=2, m=2)
    P = problem_with_width(P2, 3)
    tp = {k: np.asarray(v) for k, v in P.teacher_params.items()}
    th = embed(tp, [0, 1, 0], [0.5, 1.0, 0.5])
    e = np.array([1.0, -1.0, 0.5]) / 1.5
    th["w"][0] += 2e-3 * e
    th["w"][2] -= 2e-3 * e
    bad = {k: np.full_like(v, np.nan) for k, v in th.items()}
    batch = {k: np.stack([th[k], bad[k]]) for k in th}
    losses = np.array([float(P.loss(th)), np.nan])
    assert 1e-20 < losses[0] < 1e-10
    cols, summary = analyze_points(P, batch, losses=losses, grad_norms=np.zeros(2), hessians=None, zero_tol=1e-7,
                                   global_loss_tol=1e-20)
    assert list(cols["sym_class"]) == ["global_minimum", "not_analyzed"] and list(cols["loose_merge"]) == [True, False]
    assert cols["subspace_label"][0] == "global|r*=2|n=2,1|z=0|d=0"
    assert 1e-4 < cols["dist_to_predicted"][0] < 1e-2 and summary["classes"]["not_analyzed"] == 1


def test_subspace_count_figure(tmp_path):
    from landscape.report.symmetry_figures import plot_subspace_counts

    recs = [{"r_star": 2, "m": m, "T": t, "global_observed": o, "sym_observed": 1, "sym_predicted": 3}
            for m, t, o in [(2, 2, 1), (3, 12, 4)]]
    out = plot_subspace_counts(recs, tmp_path / "counts.png")
    assert out.stat().st_size > 1000
