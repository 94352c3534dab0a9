"""Isotropy in S_k x S_d and the certified global minimum W = I of the orthonormal-teacher ReLU problem (issue 12)."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape.analysis.families import group_spectrum
from landscape.analysis.isotropy import IsotropyAnalyzer, equivalent, has_symmetry, isotropy, orbit_key, pair_orbits


def _relu_kernel(u, v):
    """E[relu(u.x) relu(v.x)], x ~ N(0, I): |u||v| / (2 pi) (sin t + (pi - t) cos t) (Cho & Saul), by hand."""
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    c = np.clip(u @ v / (nu * nv), -1.0, 1.0)
    t = np.arccos(c)
    return nu * nv / (2 * np.pi) * (np.sin(t) + (np.pi - t) * c)


def _relu_kernel_grad(u, v):
    """d/du of the kernel above, by hand: (|v| sin t u / |u| + (pi - t) v) / (2 pi)."""
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    c = np.clip(u @ v / (nu * nv), -1.0, 1.0)
    t = np.arccos(c)
    return (nv * np.sin(t) * u / nu + (np.pi - t) * v) / (2 * np.pi)


def _loss_by_hand(w):
    """1/2 E[(sum_i relu(w_i.x) - sum_j relu(x_j))^2], written independently of landscape."""
    k, d = w.shape
    v = np.eye(d)
    ww = sum(_relu_kernel(w[i], w[j]) for i in range(k) for j in range(k))
    wv = sum(_relu_kernel(w[i], v[j]) for i in range(k) for j in range(d))
    vv = sum(_relu_kernel(v[i], v[j]) for i in range(d) for j in range(d))
    return 0.5 * (ww - 2 * wv + vv)


def _grad_by_hand(w):
    k, d = w.shape
    v = np.eye(d)
    g = np.zeros_like(w)
    for i in range(k):
        g[i] = sum(_relu_kernel_grad(w[i], w[j]) for j in range(k) if j != i) + w[i] / 2  # k(u, u) = |u|^2 / 2
        g[i] -= sum(_relu_kernel_grad(w[i], v[j]) for j in range(d))
    return g


def _problem(d, k=None):
    k = d if k is None else k
    return ls.TeacherStudent(ls.Teacher.orthonormal(d=d, width=d), ls.TwoLayer(width=k, activation=ls.ReLU()),
                             ls.PopulationLoss(), output_weights=1.0)


def test_hand_gradient_matches_finite_differences_of_hand_loss():
    w = np.random.default_rng(0).normal(size=(3, 4))
    h = 1e-6
    fd = np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[idx] = h
        fd[idx] = (_loss_by_hand(w + e) - _loss_by_hand(w - e)) / (2 * h)
    np.testing.assert_allclose(_grad_by_hand(w), fd, atol=1e-8)
    problem = _problem(4, 3)
    np.testing.assert_allclose(float(problem.loss({"w": jnp.asarray(w)})), _loss_by_hand(w), rtol=1e-12)


def test_identity_certified_with_spectrum_and_multiplicities_d4():
    d = 4
    problem = _problem(d)
    w = np.eye(d)
    pts = ls.certify(problem, {"w": jnp.asarray(w)[None]}, polish=ls.Polish(tol=1e-13))
    assert bool(pts.certified[0]) and float(pts.grad_norm[0]) <= 1e-13 and float(pts.loss[0]) <= 1e-25
    iso = isotropy(np.asarray(pts.theta["w"][0]))
    assert (iso.order, iso.name) == (math.factorial(d), "Δ(S_4)")
    # the library's Hessian against a central finite-difference Jacobian of the hand-written gradient
    h = 1e-7
    fd = np.zeros((d * d, d * d))
    for n in range(d * d):
        e = np.zeros(d * d)
        e[n] = h
        fd[:, n] = ((_grad_by_hand(w + e.reshape(d, d)) - _grad_by_hand(w - e.reshape(d, d))) / (2 * h)).ravel()
    fd = 0.5 * (fd + fd.T)
    eig_fd = np.linalg.eigvalsh(fd)
    eig = np.asarray(jax.jit(ls.spectrum)(problem, {"w": jnp.asarray(w)}))
    np.testing.assert_allclose(eig, eig_fd, atol=2e-6)
    groups, groups_fd = group_spectrum(eig, rel_tol=1e-5), group_spectrum(eig_fd, rel_tol=1e-5)
    assert [m for _, m in groups] == [m for _, m in groups_fd]
    assert sum(m for _, m in groups) == d * d and len(groups) >= 3  # a few distinct values, multiplicities
    np.testing.assert_allclose([v for v, _ in groups], [v for v, _ in groups_fd], atol=2e-6)
    assert eig[0] > 1e-3  # a strict minimum: no symmetry direction is flat with frozen output weights


def _brute_force_order(w):
    k, d = w.shape
    return sum(np.array_equal(w[np.ix_(p, r)], w) for p in itertools.permutations(range(k))
               for r in itertools.permutations(range(d)))


@pytest.mark.parametrize("seed", range(6))
def test_order_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    k, d = (3, 3) if seed % 2 else (4, 3)
    w = rng.integers(0, 2 + seed % 3, size=(k, d)).astype(float)
    if seed == 5:  # a structured point: Delta(S_2 x S_1) pattern
        w = np.array([[1.0, 0.2, 0.5], [0.2, 1.0, 0.5], [0.3, 0.3, -1.0]])
    iso = isotropy(w)
    assert iso.order == _brute_force_order(w)
    for pi, rho in iso.generators:
        np.testing.assert_array_equal(w[np.ix_(pi, rho)], w)


def test_names_and_equivalence():
    d = 7
    w = np.full((d, d), 0.1) + 0.7 * np.eye(d)
    w[-1], w[:, -1] = 0.3, -0.2
    w[-1, -1] = 0.9
    iso = isotropy(w)
    assert (iso.order, iso.name) == (math.factorial(d - 1), "Δ(S_6 × S_1)")
    ids = pair_orbits(w.shape, iso.generators)
    assert ids.max() + 1 == 5  # diagonal, off-diagonal, last row, last column, corner
    assert isotropy(np.zeros((3, 2))).name == "S_3(rows) × S_2(cols)"
    assert isotropy(w + 1e-9).order == iso.order and isotropy(w + 1e-3 * np.eye(d)[0]).order < iso.order
    rng = np.random.default_rng(0)
    pi, rho = rng.permutation(d), rng.permutation(d)
    moved = w[np.ix_(pi, rho)]
    found = equivalent(w, moved)
    assert found is not None and np.allclose(moved[np.ix_(found[0], found[1])], w)
    assert equivalent(w, moved + 1e-3) is None


def test_analyzer_columns_and_default_only_with_symmetry():
    from landscape.config import build, load_config

    problem = _problem(3)
    thetas = {"w": jnp.stack([jnp.eye(3), jnp.eye(3)[::-1] * 0.5])}
    pts = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(2),
                   certified=jnp.array([True, False]), finite=jnp.array([True, True]))
    res = ls.run_analyzers([IsotropyAnalyzer()], problem, pts)
    assert res.columns["isotropy_order"].tolist() == [6, -1]
    assert res.columns["isotropy_name"].tolist() == ["Δ(S_3)", ""]
    assert has_symmetry(problem)
    gauss = ls.TeacherStudent(ls.Teacher.gaussian(d=3, width=3, key=jax.random.key(0)), ls.TwoLayer(width=3))
    assert not has_symmetry(gauss)
    names = [a.name for a in build(load_config("configs/safran_shamir.toml")).analyzers]
    assert names == ["hessian", "symmetry", "classify", "isotropy"]
    assert "isotropy" not in [a.name for a in build(load_config("configs/quickstart.toml")).analyzers]


def test_orbit_key_and_batch_equal_point_by_point(monkeypatch):
    """The key is the same across an orbit (rows and columns permuted, a alike) and tells different labels apart;
    the analyzer's batch answer, one search per key, equals ``__call__`` on every point."""
    import landscape.analysis.isotropy as iso_mod

    rng = np.random.default_rng(3)
    d = 5
    fam = np.full((d, d), 0.1) + 0.7 * np.eye(d)  # Delta(S_4 x S_1)
    fam[-1], fam[:, -1] = 0.3, -0.2
    fam[-1, -1] = 0.9
    ws = []
    for base in (np.eye(d), fam, np.zeros((d, d)), rng.standard_normal((d, d)), np.round(rng.random((d, d)))):
        for _ in range(4):
            pi, rho = rng.permutation(d), rng.permutation(d)
            ws.append(base[np.ix_(pi, rho)] + 1e-9 * rng.standard_normal((d, d)))
    keys = [orbit_key(w) for w in ws]
    for g in range(4):  # one key per orbit where the invariants (sorted rows and columns) settle the order
        assert len(set(keys[4 * g:4 * g + 4])) == 1
    assert len(set(keys[::4])) == 5  # different orbits, different keys
    a = rng.standard_normal(d)
    pi = rng.permutation(d)
    assert orbit_key(fam, a) == orbit_key(fam[pi], a[pi]) and orbit_key(fam, a) != orbit_key(fam, a[::-1] + 1)
    problem = _problem(d)
    thetas = {"w": jnp.asarray(np.stack(ws))}
    n = len(ws)
    pts = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(n),
                   certified=jnp.ones(n, bool), finite=jnp.ones(n, bool))
    calls = []
    search = iso_mod.isotropy
    monkeypatch.setattr(iso_mod, "isotropy", lambda *args, **kw: calls.append(1) or search(*args, **kw))
    batch = ls.run_analyzers([IsotropyAnalyzer()], problem, pts).columns
    assert len(calls) == len(set(keys)) <= 8  # one search per key
    analyzer = IsotropyAnalyzer()
    for i in range(n):
        one = analyzer(problem, jax.tree.map(lambda x, i=i: x[i], pts), {})
        assert (batch["isotropy_order"][i], batch["isotropy_name"][i]) == (one["isotropy_order"],
                                                                           one["isotropy_name"])
