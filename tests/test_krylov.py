"""Matrix-free spectra (issue 12): Lanczos extremes against dense eigh, traces, SLQ density, dense/Lanczos switch."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import landscape as ls
from landscape.analysis.hessian import HessianSpectrum, spectrum_method
from landscape.analysis.krylov import (
    hessian_density,
    hessian_extremes,
    hessian_operator,
    hutchinson_trace,
    hutchpp_trace,
    lanczos_extremes,
    spectral_density,
)


def _net(d=20, width=95, n=60):
    """A two-layer tanh student on a finite sample: P = width * (d + 1) = 1995 parameters."""
    problem = ls.TeacherStudent(ls.Teacher.gaussian(d=d, width=4, key=jax.random.key(1)),
                                ls.TwoLayer(width=width, activation=ls.Tanh()),
                                ls.SampleLoss.gaussian(n=n, d=d, key=jax.random.key(2)))
    theta = ls.GaussianInit(1.0).sample(jax.random.key(3), problem)
    return problem, theta


def test_lanczos_extremes_match_dense_eigh_on_2000_parameter_net():
    problem, theta = _net()
    eigs = np.asarray(jax.jit(ls.spectrum)(problem, theta))
    assert eigs.size == 1995
    k = 4
    ext = jax.jit(lambda t: hessian_extremes(problem, t, key=jax.random.key(0), k=k, num_matvecs=400))(theta)
    scale = np.max(np.abs(eigs))
    np.testing.assert_allclose(np.asarray(ext.largest), eigs[::-1][:k], rtol=1e-8, atol=1e-8 * scale)
    np.testing.assert_allclose(np.asarray(ext.smallest), eigs[:k], rtol=1e-8, atol=1e-8 * scale)
    assert eigs[0] < 0  # a saddle region: the most negative eigenvalues are tested too
    assert np.all(np.asarray(ext.largest_residuals) < 1e-4 * scale)
    # the residual bound: every Ritz value is within its residual of an eigenvalue
    for theta_i, r in zip(np.asarray(ext.smallest), np.asarray(ext.smallest_residuals), strict=True):
        assert np.min(np.abs(eigs - theta_i)) <= r + 1e-12 * scale


def test_breakdown_on_repeated_eigenvalues_gives_exact_distinct_values():
    a = jnp.diag(jnp.repeat(jnp.array([-2.0, 0.5, 1.0, 7.0]), 25))  # 4 distinct values, multiplicity 25
    res = lanczos_extremes(lambda v: a @ v, jax.random.normal(jax.random.key(0), (100,)), k=2, num_matvecs=30)
    assert int(res.krylov_dim) == 4
    np.testing.assert_allclose(np.asarray(res.largest), [7.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(res.smallest), [-2.0, 0.5], atol=1e-12)
    assert np.all(np.asarray(res.smallest_residuals) < 1e-12)


def test_hvp_traces_and_density():
    problem, theta = _net(d=6, width=10, n=40)
    h = np.asarray(jax.jit(ls.hessian_matrix)(problem, theta))
    mv, flat = hessian_operator(problem, theta)
    v = jax.random.normal(jax.random.key(4), flat.shape)
    np.testing.assert_allclose(np.asarray(jax.jit(mv)(v)), h @ np.asarray(v), rtol=1e-10, atol=1e-12)
    p = flat.shape[0]
    est, sem = jax.jit(lambda k: hutchinson_trace(mv, p, key=k, num_samples=200))(jax.random.key(5))
    assert abs(float(est) - np.trace(h)) <= 5 * float(sem) + 1e-9
    exact = float(jax.jit(lambda k: hutchpp_trace(mv, p, key=k, num_matvecs=3 * p))(jax.random.key(6)))
    np.testing.assert_allclose(exact, np.trace(h), rtol=1e-9)  # rank <= s: Hutch++ is exact
    sd = jax.jit(lambda t: hessian_density(problem, t, key=jax.random.key(7), num_probes=16, num_matvecs=p))(theta)
    np.testing.assert_allclose(np.asarray(jnp.sum(sd.weights, axis=1)), 1.0, atol=1e-12)
    lo, hi = (float(x) for x in sd.support())
    eig = np.linalg.eigvalsh(h)
    np.testing.assert_allclose([lo, hi], [eig[0], eig[-1]], rtol=1e-8, atol=1e-10)
    grid = np.linspace(eig[0] - 1, eig[-1] + 1, 4001)
    dens = np.asarray(sd.density(grid, 0.05 * (eig[-1] - eig[0])))
    assert abs(np.trapezoid(dens, grid) - 1.0) < 1e-3
    # the quadrature of f(x) = x: the trace, up to the probes' Monte-Carlo error
    assert abs(float(sd.trace()) - np.trace(h)) < 0.5 * np.sum(np.abs(eig))
    dense_sd = spectral_density(lambda x: jnp.asarray(h) @ x, p, key=jax.random.key(8), num_probes=2, num_matvecs=5)
    assert dense_sd.nodes.shape == (2, 5)


def test_hessian_switch_dense_below_threshold_lanczos_forced():
    problem, theta = _net(d=5, width=6, n=30)
    assert spectrum_method(problem, "auto") == "dense"
    assert spectrum_method(problem, "lanczos") == "lanczos"
    thetas = jax.tree.map(lambda x: x[None], theta)
    pts = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(1),
                   certified=jnp.array([True]), finite=jnp.array([True]))
    dense = ls.run_analyzers([HessianSpectrum(), ls.Classify()], problem, pts)
    lanczos = ls.run_analyzers([HessianSpectrum(method="lanczos", k=3, num_matvecs=36), ls.Classify()], problem, pts)
    e_dense, e_lz = dense.arrays["eigenvalues"][0], lanczos.arrays["eigenvalues"][0]
    assert e_lz.shape == (6,)
    np.testing.assert_allclose(e_lz[:3], e_dense[:3], rtol=1e-8)
    np.testing.assert_allclose(e_lz[3:], e_dense[-3:], rtol=1e-8)
    assert dense.columns["kind"][0] == lanczos.columns["kind"][0]
    assert lanczos.columns["max_residual"][0] < 1e-6
