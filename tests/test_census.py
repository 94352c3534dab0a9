"""Spurious-minima census pieces (issue 12): families modulo S_k x S_d, exact polishing in Fix(G), following in d."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

import landscape as ls
from landscape.analysis.families import deduplicate, extend, follow, group_spectrum, symmetric_polish
from landscape.analysis.isotropy import isotropy, pair_orbits
from landscape.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _census_module():
    spec = importlib.util.spec_from_file_location("spurious_census", ROOT / "experiments" / "spurious_census.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _problem(d, extra=0):
    return ls.TeacherStudent(ls.Teacher.orthonormal(d=d, width=d), ls.TwoLayer(width=d + extra), ls.PopulationLoss(),
                             output_weights=1.0)


def _type_a_start(d, values):
    """A Delta(S_{d-1} x S_1) pattern: diagonal, off-diagonal, last row, last column, corner."""
    diag, off, row, col, corner = values
    w = np.full((d, d), off) + (diag - off) * np.eye(d)
    w[-1, :-1], w[:-1, -1], w[-1, -1] = row, col, corner
    return w


def test_wilson_interval_and_config_errors(tmp_path):
    mod = _census_module()
    lo, hi = mod.wilson(0, 1000)
    assert abs(lo) < 1e-15 and 0.0035 < hi < 0.0040  # 1.96^2 / (n + 1.96^2)
    lo, hi = mod.wilson(50, 1000)
    assert lo < 0.05 < hi and abs((lo + hi) / 2 - 0.05) < 0.002
    bad = tmp_path / "bad.toml"
    text = (ROOT / "configs" / "spurious_census.toml").read_text()
    bad.write_text(text.replace("grad_tol = 1e-6", "grad_tl = 1e-6", 1))
    with pytest.raises(ConfigError, match="grad_tl"):
        mod.read_config(bad)
    census, base = mod.read_config(ROOT / "configs" / "spurious_census.toml")
    assert census["dims"] == [6, 7, 8, 9] and census["count"] == 1000 and base["flow"]["grad_tol"] == 1e-6
    assert "sweep" not in base and mod.case_config(base, 7, 8, "gd", 10, 0).student.width == 8
    assert mod.pattern_name("Δ(S_8 × S_1)", 9) == "Δ(S_{d-1} × S_1)"


def test_deduplicate_modulo_permutations():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 4))
    moved = [w[np.ix_(rng.permutation(4), rng.permutation(4))] for _ in range(3)]
    other = w.copy()
    other[0, 0] += 1e-3  # same loss given below, different orbit
    groups = deduplicate([w, *moved, other, w + 1e-9], [0.1] * 4 + [0.1, 0.1 + 1e-12])
    assert sorted(len(g) for g in groups) == [1, 5]
    assert deduplicate([w, w], [0.1, 0.2]) and len(deduplicate([w, w], [0.1, 0.2])) == 2  # different levels


def test_symmetric_polish_certifies_to_1e13_and_follows_the_family():
    d = 5
    start = _type_a_start(d, (0.95, -0.05, 0.3, 0.1, -0.6))  # a rough guess in Fix(Delta(S_4 x S_1))
    iso = isotropy(start)
    assert iso.name == "Δ(S_4 × S_1)" and pair_orbits(start.shape, iso.generators).max() + 1 == 5
    assert extend(start, iso).shape == (d + 1, d + 1) and isotropy(extend(start, iso)).name == "Δ(S_5 × S_1)"
    (track,) = follow([start], d_to=d + 1, tol=1e-13)  # polish at d (Newton in Fix(G)), then d + 1
    assert [p.w.shape for p in track] == [(d, d), (d + 1, d + 1)]
    for point, name in zip(track, ("Δ(S_4 × S_1)", "Δ(S_5 × S_1)"), strict=True):
        k = point.w.shape[0]
        assert point.grad_norm <= 1e-13 and point.iso.name == name
        assert point.orbit_size * point.iso.order == math.factorial(k) ** 2
        assert sum(m for _, m in group_spectrum(point.eigenvalues)) == k * k
        assert point.loss > 1e-3 and point.kind in ("saddle", "minimum")
        # the accurate form of the loss equals the plain one away from zero loss
        assert abs(point.loss - float(_problem(k).loss({"w": point.w}))) <= 1e-12
        # symmetric criticality: the full gradient vanishes, not only its Fix(G) component
        w2, gn2, it2 = symmetric_polish(_problem(k), point.w, point.iso.generators, tol=1e-13)
        assert it2 == 0 and gn2 <= 1e-13


@pytest.mark.slow
def test_figures_from_stored_census(tmp_path, monkeypatch):
    """Both figures from a stored census.json (written here by hand: the figure code reads, never recomputes)."""
    from landscape.report import fig_spurious

    monkeypatch.chdir(tmp_path)
    res = tmp_path / "results" / "spurious_census"
    res.mkdir(parents=True)
    spec = [[0.05, 6], [0.3, 5], [1.5, 1]]
    census = {
        "rates": [{"d": d, "k": d, "method": "gradient_flow", "n": 100, "spurious_rate": 0.01 * d,
                   "spurious_ci": [0.0, 0.02 * d], "saddle_rate": 0.0, "other_rate": 0.0} for d in (5, 6)],
        "families": [{"d": 6, "k": 6, "kind": "minimum", "isotropy_name": "Δ(S_5 × S_1)", "loss": 0.02,
                      "min_eig": 0.05, "max_eig": 1.5, "spectrum": spec}],
        "followed": [{"label": "k=d+0 Δ(S_{d-1} × S_1)", "transitions": [{"d": 6, "from": "saddle", "to": "minimum"}],
                      "points": [{"d": d, "d_loss": 0.1 + 0.01 * d, "kind": "saddle" if d < 6 else "minimum",
                                  "spectrum": spec} for d in (5, 6, 7)]}],
        "global_minimum": [{"d": d, "spectrum": spec} for d in (5, 6)],
    }
    (res / "census.json").write_text(json.dumps(census))
    out = tmp_path / "fig"
    out.mkdir()
    paths = fig_spurious.spurious_minima(None, out, quick=True)
    assert [p.name for p in paths] == ["spurious-minima.png", "spurious-minima.json"]
    paths = fig_spurious.hessian_spectra(None, out, quick=True)
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    dens = json.loads((out / "hessian-density-mlp.json").read_text())
    assert dens["params"] > 5000 and abs(np.sum(dens["weights"][0]) - 1.0) < 1e-9
