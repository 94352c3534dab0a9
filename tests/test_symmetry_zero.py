"""Reduced width r = 0: the origin and all-dead points are symmetry-induced critical points, not crashes.

The width-0 network (f = 0) embedded into width m by zero-output (or dead) neurons: the origin w = 0, a = 0 is a
certified critical point (its gradient vanishes exactly, relu'(0) = 0 by convention) with loss 1/2 E[y^2].
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape  # noqa: F401  (x64)
from landscape.analysis.hessian import hessian_matrix
from landscape.analysis.symmetry import (
    canonicalize,
    distance_mod_symmetry,
    embed,
    identify,
    jacobian_null_prediction,
    reduce_two_layer,
    tangent_directions,
    teacher_reduction,
)
from landscape.analysis.symmetry.canonical import canonical_rows, order_groups, rounded_key, short_hash
from landscape.analysis.symmetry.subspace import orthonormal_basis, projection_to_subspace
from landscape.problem import PopulationLoss, ReLU, SampleLoss, Tanh, Teacher, TeacherStudent, TwoLayer

EMPTY_HASH = short_hash("")
GLOBAL_TOL = 1e-20

_hess = jax.jit(hessian_matrix)
_loss = jax.jit(lambda problem, th: problem.loss(th))
_grad = jax.jit(lambda problem, th: jax.grad(problem.loss)(th))


def _origin(m=2, d=3, bias=False):
    th = {"w": jnp.zeros((m, d)), "a": jnp.zeros(m)}
    if bias:
        th["b"] = jnp.zeros(m)
    return th


def _grad_max(problem, th):
    g = _grad(problem, {k: jnp.asarray(v) for k, v in th.items()})
    return max(float(jnp.max(jnp.abs(v))) for v in g.values())


def _analyze(problem, th):
    """(loss, Reduction, teacher Reduction, Identity, Hessian) of one point."""
    th = {k: jnp.asarray(v) for k, v in th.items()}
    loss = float(_loss(problem, th))
    red = reduce_two_layer(problem.full_params(th), problem.student.activation, x=problem.x)
    teacher = teacher_reduction(problem)
    ident = identify(red, loss=loss, teacher=teacher, global_loss_tol=GLOBAL_TOL)
    h = np.asarray(_hess(problem, th))
    return loss, red, teacher, ident, h


def _move(th, V, i, t):
    """theta + t V[:, i] (V in the flat order of sorted keys)."""
    from landscape.analysis.symmetry.subspace import flat_index

    idx = flat_index(th)
    return {k: jnp.asarray(np.asarray(th[k], float) + t * V[idx[k], i]) for k in th}


def _relu_population(teacher_a="ones"):
    return TeacherStudent(Teacher.orthonormal(d=3, width=2, output_weights=teacher_a),
                          TwoLayer(width=2, activation=ReLU()), PopulationLoss())


def test_empty_reduced_point_helpers():
    assert order_groups(np.zeros((0, 3)), np.zeros(0), 3).shape == (0,)
    assert order_groups([], [], 3).dtype.kind == "i"
    assert rounded_key(np.zeros((0, 4)), np.zeros(0), 3) == "" == rounded_key([], [], 3)
    # non-empty inputs keep their behaviour
    assert list(order_groups(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 2.0]), 3)) == [1, 0]
    assert rounded_key(np.array([[1.0, 0.0]]), np.array([2.0]), 1) == "1.0,0.0,2.0"


def test_origin_relu_population_is_symmetry_induced_width_0():
    P = _relu_population()
    th = _origin()
    loss, red, teacher, ident, h = _analyze(P, th)
    assert _grad_max(P, th) == 0.0
    assert loss == pytest.approx(0.5 + 1.0 / (2.0 * np.pi), rel=1e-12)  # 1/2 E[y^2], y = relu(x1) + relu(x2)
    assert red.r == 0 and red.m == 2 and red.zero == (0, 1) and red.dead == ()
    assert red.multiplicities == () and red.u_hat.shape == (0, 3) and red.A.shape == (0,)
    assert red.reduced["w"].shape == (0, 3) and red.reduced["a"].shape == (0,)
    assert red.partition_string() == "|z{0,1}|d{}" and red.assignment() == ("z", "z")
    assert teacher.r == 2
    assert ident.sym_class == "symmetry_induced" and ident.teacher_of_group == ()
    assert ident.label == f"sym|r=0|{EMPTY_HASH}|n=|z=2|d=0"
    assert ident.subspace_id == ident.label + "#z.z"
    # deterministic: the same label again, and for the same point of a finite-sample problem
    assert identify(red, loss=loss, teacher=teacher, global_loss_tol=GLOBAL_TOL).label == ident.label
    Ps = TeacherStudent(Teacher.orthonormal(d=3, width=2), TwoLayer(width=2, activation=ReLU()),
                        SampleLoss.gaussian(n=50, d=3, key=jax.random.key(0)))
    red_s = reduce_two_layer(Ps.full_params(th), ReLU(), x=Ps.x)
    assert identify(red_s, loss=loss, teacher=teacher_reduction(Ps), global_loss_tol=GLOBAL_TOL).label == ident.label

    assert np.all(np.isfinite(h)) and np.max(np.abs(h)) == 0.0
    V, labels = tangent_directions(P, th, red, residual_zero=False, hessian=h)
    # u_j = 0 with relu: a_j is free (the gradient in u_j, a_j relu'(0) E[x r], stays 0); no incoming direction
    # (E[relu(u . x) r] is 1-homogeneous in u, its zero set is not read off the derivative at 0)
    assert labels == ["zero in n0", "zero in n1"] and V.shape == (8, 2)
    for i in range(V.shape[1]):
        moved = _move(th, V, i, 0.7)
        assert float(_loss(P, moved)) == pytest.approx(loss, abs=1e-14)
        assert _grad_max(P, moved) < 1e-14
    assert tangent_directions(P, th, red, residual_zero=False, hessian=None)[1] == []  # g_j unknown
    assert jacobian_null_prediction(P, th, red) == 2 * (3 + 1)
    proj = projection_to_subspace(P, th, red, red.u_hat, red.A, list(range(red.r)))
    assert all(np.array_equal(proj[k], np.asarray(th[k])) for k in th)


def test_origin_relu_explain_null_space():
    from landscape.analysis.symmetry.analyze import explain_null_space

    P = _relu_population()
    th = _origin()
    loss, _, _, _, h = _analyze(P, th)
    ex = explain_null_space(P, th, h, 1e-7, loss=loss)
    assert ex["sym_class"] == "symmetry_induced" and ex["subspace_label"] == f"sym|r=0|{EMPTY_HASH}|n=|z=2|d=0"
    assert ex["partition"] == "|z{0,1}|d{}"
    assert ex["predicted_dim"] == 2 == ex["null_dim_explained"] and ex["null_dim_measured"] == 8
    assert ex["index"] == 0 and np.isfinite(ex["tangent_curvature"])


def test_origin_analyze_points_row():
    from landscape.analysis.symmetry.analyze import analyze_points

    P = _relu_population()
    th = _origin()
    loss = float(_loss(P, th))
    batch = {k: np.asarray(v)[None] for k, v in th.items()}
    h = np.asarray(_hess(P, th))[None]
    cols, _ = analyze_points(P, batch, losses=np.array([loss]), grad_norms=np.zeros(1), hessians=h,
                             zero_tol=1e-7, global_loss_tol=GLOBAL_TOL)
    assert int(cols["reduced_width"][0]) == 0 and cols["sym_class"][0] == "symmetry_induced"
    assert int(cols["n_zero_neurons"][0]) == 2 and int(cols["n_dead_neurons"][0]) == 0
    assert cols["multiplicities"][0] == "" and cols["partition"][0] == "|z{0,1}|d{}"
    assert cols["subspace_label"][0] == f"sym|r=0|{EMPTY_HASH}|n=|z=2|d=0"
    assert float(cols["dist_to_predicted"][0]) == 0.0 and np.isfinite(float(cols["tangent_curvature"][0]))


def test_origin_tanh_population_level_sets():
    P = TeacherStudent(Teacher.orthonormal(d=3, width=2), TwoLayer(width=2, activation=Tanh()), PopulationLoss())
    th = _origin()
    loss, red, teacher, ident, h = _analyze(P, th)
    assert _grad_max(P, th) == 0.0 and loss > 0.1 and np.all(np.isfinite(h))
    assert red.r == 0 and red.zero == (0, 1) and teacher.r == 2
    assert ident.sym_class == "symmetry_induced" and ident.label == f"sym|r=0|{EMPTY_HASH}|n=|z=2|d=0"
    V, labels = tangent_directions(P, th, red, residual_zero=False, hessian=h)
    # g_j = E[tanh'(0) x r] != 0: the level set E[tanh(u . x) r] = 0 has D - 1 = 2 tangent directions per neuron,
    # and a_j is not free (moving it makes the gradient in u_j nonzero)
    assert labels == ["level set n0"] * 2 + ["level set n1"] * 2
    lam, vec = np.linalg.eigh(h)
    null = vec[:, np.abs(lam) <= 1e-7 * np.max(np.abs(lam))]
    Q = orthonormal_basis(V)
    assert null.shape[1] == 4 and np.allclose(np.linalg.svd(null.T @ Q, compute_uv=False), 1.0, atol=1e-8)
    assert jacobian_null_prediction(P, th, red) == 2 * (3 + 1)


def test_origin_with_zero_teacher_is_global_minimum():
    P = _relu_population(teacher_a=np.zeros(2))  # an array: same compilation as the "ones" teacher
    th = _origin()
    loss, red, teacher, ident, h = _analyze(P, th)
    assert loss == 0.0 and teacher.r == 0 and red.r == 0
    assert ident.sym_class == "global_minimum" and ident.teacher_match_err == 0.0
    assert ident.label == "global|r*=0|n=|z=2|d=0"
    V, labels = tangent_directions(P, th, red, residual_zero=True, hessian=h)
    # zero loss: incoming vectors free (3 each) and, as u_j = 0, outgoing weights free too: everything
    assert V.shape == (8, 8) and orthonormal_basis(V).shape[1] == 8
    assert jacobian_null_prediction(P, th, red) == 8 == int(np.sum(np.abs(np.linalg.eigvalsh(h)) <= 1e-12))


@pytest.mark.parametrize("zero_output", [False, True])
def test_all_dead_on_sample_with_bias(zero_output):
    P = TeacherStudent(Teacher.orthonormal(d=3, width=2), TwoLayer(width=2, activation=ReLU(), bias=True),
                       SampleLoss.gaussian(n=50, d=3, key=jax.random.key(0)))
    th = {"w": jnp.array([[0.3, -0.5, 0.2], [-0.4, 0.1, 0.6]]), "b": jnp.full(2, -100.0),
          "a": jnp.zeros(2) if zero_output else jnp.array([0.7, -1.2])}
    assert np.max(np.asarray(P.x) @ np.asarray(th["w"]).T + np.asarray(th["b"])) < 0  # dead on every sample
    loss, red, teacher, ident, h = _analyze(P, th)
    assert _grad_max(P, th) == 0.0 and loss > 0 and np.max(np.abs(h)) == 0.0
    assert red.r == 0 and teacher.r == 2 and ident.sym_class == "symmetry_induced"
    if zero_output:
        assert red.zero == (0, 1) and red.dead == () and ident.label == f"sym|r=0|{EMPTY_HASH}|n=|z=2|d=0"
    else:
        assert red.zero == () and red.dead == (0, 1) and ident.label == f"sym|r=0|{EMPTY_HASH}|n=|z=0|d=2"
    V, labels = tangent_directions(P, th, red, residual_zero=False, hessian=h)
    # inactive on the whole sample: the loss is constant near theta, every direction is a symmetry direction
    assert V.shape[1] == 10 and orthonormal_basis(V).shape[1] == 10
    for i in range(V.shape[1]):
        moved = _move(th, V, i, 0.5)
        assert float(_loss(P, moved)) == loss and _grad_max(P, moved) == 0.0
    if zero_output:
        assert labels.count("zero in n0") == 1 and labels.count("free in n0") == 4
        no_h = tangent_directions(P, th, red, residual_zero=False, hessian=None)[1]
        assert no_h == ["zero in n0", "zero in n1"]


@pytest.mark.parametrize("act", [ReLU(), Tanh()])
def test_canonical_and_distance_with_zero_nets(act):
    rng = np.random.default_rng(0)
    zero2 = {"w": np.zeros((2, 3)), "a": np.zeros(2)}
    zero0 = {"w": np.zeros((0, 3)), "a": np.zeros(0)}
    net = {"w": rng.standard_normal((2, 3)), "a": rng.standard_normal(2)}
    c2, c0 = canonicalize(zero2, act), canonicalize(zero0, act)
    assert c2["w"].shape == (2, 3) and np.all(c2["w"] == 0) and np.all(c2["a"] == 0)
    assert c0["w"].shape == (0, 3) and c0["a"].shape == (0,)
    for p, q in ((zero2, zero2), (zero0, zero0), (zero0, zero2), (zero2, zero0)):
        dist, assign = distance_mod_symmetry(p, q, act)
        assert dist == 0.0 and assign.shape == (len(p["a"]),)
    expected = float(np.linalg.norm(canonical_rows(net, act)))
    for z in (zero2, zero0):
        d1, a1 = distance_mod_symmetry(z, net, act)
        d2, a2 = distance_mod_symmetry(net, z, act)
        assert np.isfinite(d1) and d1 == pytest.approx(expected, rel=1e-12) and d2 == pytest.approx(d1, rel=1e-12)
        assert a1.shape == (len(z["a"]),) and a2.shape == (2,)
    assert list(distance_mod_symmetry(net, zero0, act)[1]) == [-1, -1]


def test_embed_width_0():
    out = embed({"w": np.zeros((0, 3)), "a": np.zeros(0)}, [-1, -1])
    assert out["w"].shape == (2, 3) and np.all(out["w"] == 0) and np.all(out["a"] == 0)
    zi = np.arange(8.0).reshape(2, 4)
    out = embed({"w": np.zeros((0, 3)), "b": np.zeros(0), "a": np.zeros(0)}, [-1, -1], zero_incoming=zi)
    assert np.array_equal(out["w"], zi[:, :3]) and np.array_equal(out["b"], zi[:, 3]) and np.all(out["a"] == 0)
    with pytest.raises(ValueError):
        embed({"w": np.zeros((0, 3)), "a": np.zeros(0)}, [0, -1])
