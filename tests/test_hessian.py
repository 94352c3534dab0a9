import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from landscape.analysis.hessian import flat_loss, hessian_matrix, hvp, spectrum
from landscape.config import build_problem, config_from_dict
from landscape.flow.init import init_params


def _problem(**student):
    raw = {
        "problem": {"input_dim": 3, "activation": "relu"},
        "teacher": {"width": 2},
        "student": {"width": 3, **student},
    }
    return build_problem(config_from_dict(raw))


def test_hessian_symmetric_and_matches_finite_differences_of_gradient():
    p = _problem()
    theta = init_params(jax.random.PRNGKey(1), p, scale=1.0)
    f, x = flat_loss(p, theta)
    h = np.asarray(jax.jit(hessian_matrix)(p, theta))
    assert np.allclose(h, h.T, atol=0)
    g = jax.jit(jax.grad(f))
    eps = 1e-6
    fd = np.stack([(g(x + eps * e) - g(x - eps * e)) / (2 * eps) for e in np.eye(x.size)])
    assert np.max(np.abs(fd - h)) < 1e-6 * max(1.0, np.max(np.abs(h)))


def test_closed_form_hessian_equals_autodiff_hessian_at_the_special_points():
    # hessian_matrix differentiates the closed-form population gradient forward (flow.polish.flat_gradient); it must
    # equal forward-over-reverse through the kernel, jax.hessian of the loss, to rounding, and stay finite, at
    # random, coincident, parallel, antiparallel and zero neurons, all neurons at zero and the teacher itself (relu
    # with output weights trained, leaky relu with them frozen).
    import landscape as ls

    d = 4
    rng = np.random.default_rng(0)
    base = rng.normal(size=(d, d))
    special = [np.eye(d), base]
    for i, j, s in ((1, 0, 1.0), (1, 0, 2.5), (1, 0, -0.7), (2, 0, 0.0)):  # coincident, parallel, antiparallel, 0
        w = base.copy()
        w[i] = s * w[j]
        special.append(w)
    special.append(np.zeros((d, d)))
    ws = jnp.asarray(np.stack(special))
    for act, frozen in ((ls.ReLU(), None), (ls.LeakyReLU(0.2), "teacher")):
        problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=d, width=d), ls.TwoLayer(width=d, activation=act),
                                    ls.PopulationLoss(), output_weights=frozen)
        thetas = {"w": ws} if frozen else {"w": ws, "a": jnp.asarray(rng.normal(size=(len(special), d)))}

        def auto(theta, problem=problem):
            f, x = flat_loss(problem, theta)
            return jax.hessian(f)(x)

        h = np.asarray(jax.jit(jax.vmap(lambda t, problem=problem: hessian_matrix(problem, t)))(thetas))
        ref = np.asarray(jax.jit(jax.vmap(auto))(thetas))
        assert np.all(np.isfinite(h))
        scale = np.maximum(1.0, np.max(np.abs(ref), axis=(1, 2)))
        assert np.all(np.max(np.abs(h - ref), axis=(1, 2)) <= 1e-13 * scale), (act.label, frozen)


def test_hvp_matches_dense_hessian():
    p = _problem()
    theta = init_params(jax.random.PRNGKey(2), p, scale=1.0)
    v = jax.random.normal(jax.random.PRNGKey(3), (ravel_pytree(theta)[0].size,))
    assert np.allclose(jax.jit(hvp)(p, theta, v), jax.jit(hessian_matrix)(p, theta) @ v, atol=1e-12)


def test_teacher_as_student_zero_loss_psd_and_rescaling_null_directions():
    # student = teacher (width 2, trained output weights): every neuron's rescaling (w, a) -> (c w, a / c) is a
    # continuous symmetry through a critical point, so the Hessian has (at least) one zero eigenvalue per neuron.
    p = build_problem(config_from_dict({
        "problem": {"input_dim": 3, "activation": "relu"}, "teacher": {"width": 2}, "student": {"width": 2}}))
    theta = {"w": jnp.eye(3)[:2], "a": jnp.ones(2)}
    assert float(p.loss(theta)) == 0.0
    eigs = np.asarray(jax.jit(spectrum)(p, theta))
    assert eigs[0] > -1e-12
    assert np.sum(np.abs(eigs) < 1e-10 * eigs[-1]) >= 2
    flat = ravel_pytree(theta)[0]
    h = np.asarray(jax.jit(hessian_matrix)(p, theta))
    # rescaling tangent of neuron 0: d(a_0) = -a_0, d(w_0) = w_0 (ravel order: a then w)
    t = np.zeros(flat.size)
    t[0] = -1.0
    t[2:5] = np.eye(3)[0]
    assert np.linalg.norm(h @ t) < 1e-12


def test_hessian_matrices_leave_the_device_only_for_an_analyzer_that_reads_them(monkeypatch):
    """``_hessian`` and ``_eigvecs`` (n, P, P) are copied to the host for the symmetry analysis, not for Classify."""
    import landscape as ls

    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=3))
    thetas = {"w": jnp.stack([jnp.eye(3), jnp.eye(3)[jnp.array([0, 1, 1])]]), "a": jnp.ones((2, 3))}
    points = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(2),
                      certified=jnp.ones(2, bool), finite=jnp.ones(2, bool))
    fetched: list = []
    device_get = jax.device_get
    monkeypatch.setattr(jax, "device_get", lambda x: fetched.append(x) or device_get(x))
    alone = ls.run_analyzers([ls.HessianSpectrum(), ls.Classify()], problem, points)
    names = {k for x in fetched if isinstance(x, dict) for k in x}
    assert "eigenvalues" in names and not names & {"_hessian", "_eigvecs"}
    fetched.clear()
    both = ls.run_analyzers([ls.HessianSpectrum(), ls.SymmetryAnalysis(), ls.Classify()], problem, points)
    names = {k for x in fetched if isinstance(x, dict) for k in x}
    assert {"_hessian", "_eigvecs"} <= names
    np.testing.assert_array_equal(alone.arrays["eigenvalues"], both.arrays["eigenvalues"])
    assert list(both.status) == ["ok", "ok"]
