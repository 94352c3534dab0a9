"""The public library API: the README's Python example verbatim, an analyzer written outside the package reaching
points.parquet through `landscape run`, per-point analysis status, the all-zero point, traced hyperparameters."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from jax import monitoring

import landscape as ls
from landscape.cli import main
from landscape.config import build, load_config

README = Path(__file__).resolve().parents[1] / "README.md"
_COMPILES: list[str] = []
monitoring.register_event_duration_secs_listener(
    lambda name, *a, **k: _COMPILES.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
)


def _readme_blocks() -> list[str]:
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.slow
def test_readme_python_example_runs_verbatim_and_recompiles_nothing_for_new_numbers():
    blocks = _readme_blocks()
    assert len(blocks) == 2 and "ls.explore(" in blocks[0] and len(blocks[0].strip().splitlines()) <= 7
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    res, table = ns["res"], ns["res"].table()
    assert len(table) == 64 and set(table["kind"]) <= {"minimum", "saddle", "degenerate", "not_converged"}
    cert = table[table["certified"]]
    assert len(cert) > 32 and (cert["grad_norm"] <= 1e-10).all() and (table["analysis_status"] == "ok").all()
    assert {"global_minimum", "symmetry_induced"} <= set(cert["sym_class"])
    assert set(res.arrays()) >= {"eigenvalues", "theta.w", "theta.a", "theta0.w", "curve.loss"}
    plt.close("all")
    # the second block adds an analyzer; same shapes and a new t_max: nothing compiles again
    n_before = len(_COMPILES)
    exec(compile(blocks[1], "README.md", "exec"), ns)
    again = ls.explore(ns["problem"], ls.GradientFlow(t_max=100.0), key=jax.random.key(0), n=64)
    # packed flows and polishing compile one segment program (and its gather / scatter) per batch size the run
    # shrinks to
    new_buckets = set(again.packing.shapes) - set(res.packing.shapes) - set(ns["res"].packing.shapes)
    new_polish = (set(again.polish_packing.shapes) - set(res.polish_packing.shapes)
                  - set(ns["res"].polish_packing.shapes))
    assert len(_COMPILES) - n_before <= 2 + 3 * len(new_buckets) + 3 * len(new_polish), \
        "only MaxWeight (batched + eval) and new buckets"
    w = np.asarray(ns["res"].points.theta["w"])
    np.testing.assert_allclose(ns["res"].table()["max_abs_w"], np.abs(w).max(axis=(1, 2)))
    assert float(again.trajectory.ts[0, -1]) == 100.0


TOY = '''
import jax.numpy as jnp
import landscape as ls


class MaxWeight(ls.AbstractAnalyzer):
    """Jittable: the largest first-layer weight."""

    name = "max_weight"

    def __call__(self, problem, point, previous):
        return {"max_abs_w": jnp.max(jnp.abs(point.theta["w"])), "top_eig": previous["eigenvalues"][-1]}

    requires = ("eigenvalues",)


class Band(ls.AbstractAnalyzer):
    """Host-side, certified points only; fails on purpose above a loss of 1e-3."""

    name = "band"
    jittable = False
    only_certified = True
    columns = {"band": ""}

    def __call__(self, problem, point, previous):
        if point.loss > 1e-3:
            raise ValueError("toy failure")
        return {"band": "zero" if point.loss < 1e-20 else "positive"}
'''


def _config(tmp_path, scale: float, analyzers=None, lr: float = 0.01) -> Path:
    extra = "" if analyzers is None else f"\n[analysis]\nanalyzers = {analyzers}\n"
    path = tmp_path / f"cfg_{scale}_{lr}.toml"
    path.write_text(f"""
[problem]
input_dim = 3
activation = "relu"
[teacher]
width = 2
[student]
width = 2
[init]
count = 8
scale = {scale}
[flow]
method = "gd"
steps = 50
lr = {lr}
{extra}""")
    return path


def test_toy_analyzer_outside_the_package_gets_its_columns_in_points_parquet(tmp_path, monkeypatch):
    assert len([line for line in TOY.strip().splitlines() if line.strip()]) < 30
    (tmp_path / "toy_analyzers.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = '["hessian", "symmetry", "classify", "toy_analyzers:MaxWeight", "toy_analyzers:Band"]'
    out = tmp_path / "run"
    config = _config(tmp_path, 1.0, names, lr=0.5)
    assert main(["run", str(config), "--out", str(out), "--no-figures"]) == 0
    table = pd.read_parquet(out / "points.parquet").sort_values("id").reset_index(drop=True)
    arrays = np.load(out / "arrays.npz")
    assert len(table) == 8
    np.testing.assert_allclose(table["max_abs_w"], np.abs(arrays["theta.w"]).max(axis=(1, 2)))
    np.testing.assert_allclose(table["top_eig"], arrays["eigenvalues"][:, -1])
    # the host analyzer failed on every point above loss 1e-3: labelled per point, the run completed
    high = table["certified"] & (table["loss"] > 1e-3)
    assert high.any() and (table.loc[table["certified"] & ~high, "band"] != "").any()
    assert table.loc[high, "analysis_status"].str.contains("band: ValueError: toy failure").all()
    assert (table.loc[high, "band"] == "").all() and (table.loc[~high, "analysis_status"] == "ok").all()
    # the library gives the same columns as the stored table (which adds the sweep's own)
    b = build(load_config(config))
    lib = ls.explore(b.problem, b.flow, key=jax.random.PRNGKey(b.seed), n=8, init=b.init, polish=b.polish,
                     analyzers=b.analyzers).table()
    assert set(lib.columns) <= set(table.columns)
    pd.testing.assert_frame_equal(lib[["id", "loss", "kind", "max_abs_w"]], table[["id", "loss", "kind", "max_abs_w"]])


def test_bad_analyzer_names_are_one_line_errors(tmp_path, capsys):
    for names, msg in [('["hessian", "classify", "nope"]', "unknown analyzer 'nope'"),
                       ('["hessian", "classify", "no_such_module:X"]', "cannot import 'no_such_module:X'"),
                       ('["classify", "hessian"]', '"hessian" and then "classify"'),
                       ('["hessian", "classify", "landscape.problem:ReLU"]', "not a subclass")]:
        assert main(["run", str(_config(tmp_path, 0.1, names)), "--out", str(tmp_path / "x"), "--dry-run"]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_all_zero_point_is_analyzed_not_a_crash(tmp_path):
    """Regression: relu population loss, d = 3, widths 2, init.scale 0.1, gd 50 steps reaches the origin, where
    the symmetry analyzer raised 'cannot reshape array of size 0' and the run exited 1 with no rows."""
    out = tmp_path / "origin"
    assert main(["run", str(_config(tmp_path, 0.1)), "--out", str(out), "--no-figures"]) == 0
    table = pd.read_parquet(out / "points.parquet")
    assert len(table) == 8 and (table["analysis_status"] == "ok").all()
    origin = table[table["certified"] & (table["reduced_width"] == 0)]
    assert len(origin) > 0 and (origin["sym_class"] == "symmetry_induced").all()
    assert np.allclose(origin["loss"], 0.5 + 1 / (2 * np.pi))  # 1/2 E[y^2] for the orthonormal relu teacher


class _Raises(ls.AbstractAnalyzer):
    name = "raises"
    jittable = False
    columns = {"flag": -1}

    def __call__(self, problem, point, previous):
        if point.loss > 1.0:
            raise RuntimeError("bad point")
        return {"flag": 1}


class _Shape(ls.AbstractAnalyzer):
    name = "shape"

    def __call__(self, problem, point, previous):
        return {"norm": jnp.linalg.norm(point.theta["w"]), "row": point.theta["w"][0]}


def test_engine_isolates_failures_and_splits_columns_and_arrays():
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
    w = jnp.stack([jnp.eye(3)[:2], 5 * jnp.ones((2, 3)), jnp.full((2, 3), jnp.nan)])
    loss = jnp.array([0.0, 2.0, jnp.nan])
    points = ls.Point(theta={"w": w, "a": jnp.ones((3, 2))}, loss=loss, grad_norm=jnp.zeros(3),
                      certified=jnp.array([True, True, False]), finite=jnp.array([True, True, False]))
    res = ls.run_analyzers([_Shape(), _Raises()], problem, points)
    assert list(res.status) == ["ok", "raises: RuntimeError: bad point", "ok"]
    np.testing.assert_array_equal(res.columns["flag"][:2], [1, -1])
    assert res.arrays["row"].shape == (3, 3) and res.columns["norm"].shape == (3,)
    with pytest.raises(ValueError, match="needs 'eigenvalues'"):
        ls.run_analyzers([ls.Classify()], problem, points)
    with pytest.raises(ValueError, match="listed twice"):
        ls.run_analyzers([_Shape(), _Shape()], problem, points)


def test_polish_batch_traces_tol():
    """Regression: polish_batch recompiled (about 12 s) for every new Python-float tol."""
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
    thetas = {"w": jnp.eye(3)[None, :2] + 1e-3, "a": jnp.ones((1, 2))}
    first = ls.flow.polish_batch(problem, thetas, tol=1e-10, max_iter=20)
    n_before = len(_COMPILES)
    second = ls.flow.polish_batch(problem, thetas, tol=1e-9, max_iter=20)
    assert len(_COMPILES) == n_before
    assert float(first.grad_norm[0]) <= 1e-10 and float(second.grad_norm[0]) <= 1e-9


def test_strategy_objects_carry_their_facts():
    assert ls.ReLU().has_closed_form and not ls.Softplus().has_closed_form and ls.Erf().has_closed_form
    assert ls.LeakyReLU(0.2).label == "leaky_relu(0.2)" and ls.ReLUPower(3).homogeneity == 3.0
    assert ls.Tanh().odd and not ls.Sigmoid4Softplus().odd and ls.Sigmoid4Softplus().quadrature_order == 256
    with pytest.raises(ValueError, match="slope"):
        ls.LeakyReLU(1.5)
    with pytest.raises(ValueError, match="two-layer"):
        ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.MLP((3, 2)), ls.PopulationLoss())
    with pytest.raises(ValueError, match="exact only"):
        ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(2, ls.ReLU(), bias=True))
    frozen = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=4), output_weights=0.5)
    assert set(frozen.trainable_shapes) == {"w"} and float(frozen.frozen["a"][0]) == 0.5
