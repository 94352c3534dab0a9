"""``landscape slice``, ``landscape connect`` and ``landscape figure connectivity`` on stored results (issue 11).

The results directories are written by the real runner and store (``run_sweep``) with a stand-in chunk function
that stores exact global minima (and one point that is not a minimum) instead of running flows: the commands under
test only read stored points. Same problem family as tests/test_paths.py (ReLU, population loss, d = 2,
orthonormal teacher of width 2), so the compilations are shared.
"""

import json

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from landscape.analysis.paths.zero_loss_path import _evaluate
from landscape.cli import main as cli_main
from landscape.config import build_problem
from landscape.report.finalize import finalize
from landscape.store import load_points
from landscape.sweep.execute import ChunkResult
from landscape.sweep.runner import run_sweep

CONFIG = """
[problem]
input_dim = 2
activation = "relu"
loss = "population"
[teacher]
kind = "orthonormal"
width = 2
output_weights = "ones"
seed = 0
[student]
width = {m}
train_output_weights = true
[init]
count = {count}
"""


def stored_minima(cfg, start, count, **kw):
    """Stand-in for run_chunk: exact global minima of the config's problem (id 3 of width 3: not a minimum)."""
    problem = build_problem(cfg)
    V, c = np.asarray(problem.teacher_params["w"]), np.asarray(problem.teacher_params["a"])
    if cfg.student.width == 3:
        thetas = [(np.vstack([V, [0.6, -0.8]]), np.append(c, 0.0)),            # teacher + zero-output neuron
                  (np.vstack([V[::-1], [-1.0, 0.3]]), np.append(c[::-1], 0.0)),  # permuted
                  (np.vstack([V[1], V[0], V[0]]), np.array([c[1], 0.3 * c[0], 0.7 * c[0]])),  # split
                  (np.vstack([V, [0.6, -0.8]]), np.append(c, 0.5))]              # not a global minimum
    else:
        thetas = [(V, c), (V[::-1], c[::-1])]
    w = np.stack([t[0] for t in thetas])[start:start + count]
    a = np.stack([t[1] for t in thetas])[start:start + count]
    loss, gn = _evaluate(problem, {"w": jnp.asarray(w), "a": jnp.asarray(a)})
    ids = np.arange(start, start + count)
    rows = pd.DataFrame({"id": ids, "loss": loss, "grad_norm": gn, "kind": np.where(loss < 1e-20, "minimum", "other"),
                         "index": 0, "is_global": loss < 1e-20, "certified": gn < 1e-10, "flow_status": "converged",
                         "n_steps": 0})
    return ChunkResult(rows=rows, arrays={"id": ids, "theta.w": w, "theta.a": a}, timings={})


def _results(tmp_path_factory, m, count):
    d = tmp_path_factory.mktemp(f"m{m}")
    cfg = d / "cfg.toml"
    cfg.write_text(CONFIG.format(m=m, count=count))
    out = d / "res"
    assert run_sweep(cfg, out_dir=out, run_chunk=stored_minima, figures=False, progress=False,
                     on_complete=finalize) == 0
    return out


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    return _results(tmp_path_factory, 3, 4)


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    return _results(tmp_path_factory, 2, 2)


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


def test_slice_through_a_stored_point(wide, capsys):
    stored = load_points(wide).set_index("id")["loss"]
    assert cli_main(["slice", str(wide), "--point", "3", "--directions", "most_negative,largest", "--n", "7"]) == 0
    out = wide / "slices" / "point3-most_negative-largest"
    info = json.loads((out / "slice.json").read_text())
    assert info["shape"] == [7, 7] and (out / "slice.png").stat().st_size > 0 and (out / "slice.npz").is_file()
    # the origin of the grid is the stored point: its loss is the stored loss (to rounding in the last bits)
    assert info["origin_loss"] == pytest.approx(float(stored[3]), rel=1e-14, abs=0)
    assert info["loss_min"] <= info["origin_loss"] <= info["loss_max"]
    printed = capsys.readouterr().out
    assert "slice through point 3" in printed and "Hessian most negative" in printed
    # again: a new directory, nothing overwritten
    assert cli_main(["slice", str(wide), "--point", "3", "--directions", "most_negative,largest", "--n", "7"]) == 0
    assert (wide / "slices" / "point3-most_negative-largest-2" / "slice.json").is_file()
    # a line along a filter-normalised direction, and the plane through three stored global minima
    assert cli_main(["slice", str(wide), "--point", "0", "--directions", "filter", "--n", "9"]) == 0
    assert cli_main(["slice", str(wide), "--point", "0", "--through", "1", "2", "--n", "7"]) == 0
    plane = json.loads((wide / "slices" / "point0-through-1-2" / "slice.json").read_text())
    assert set(plane["mark_loss"]) == {"origin", "point 1", "point 2"}
    assert max(plane["mark_loss"].values()) <= 1e-25  # three global minima


def test_connect_symmetry_path(wide, capsys):
    assert cli_main(["connect", str(wide), "--from", "0", "--to", "1", "--n-per-segment", "9"]) == 0
    info = json.loads((wide / "connect" / "0-1-symmetry" / "path.json").read_text())
    assert info["certified"] and info["max_loss"] <= 1e-25 and info["n_segments"] == 7
    assert info["vertices_certified"] == info["n_vertices"]
    printed = capsys.readouterr().out
    assert "CERTIFIED" in printed and "split ratio" in printed
    assert cli_main(["connect", str(wide), "--from", "0", "--to", "2", "--n-per-segment", "9"]) == 0
    assert cli_main(["connect", str(wide), "--from", "0", "--to", "1", "--n-per-segment", "9"]) == 0
    assert (wide / "connect" / "0-1-symmetry-2" / "path.json").is_file()  # never overwritten
    arrays = np.load(wide / "connect" / "0-2-symmetry" / "path.npz")
    assert arrays["loss"].max() <= 1e-25 and arrays["vertices.w"].shape[1:] == (3, 2)


def test_connect_neb_saddle(narrow, capsys):
    assert cli_main(["connect", str(narrow), "--from", "0", "--to", "1", "--method", "neb", "--images", "15"]) == 0
    info = json.loads((narrow / "connect" / "0-1-neb" / "path.json").read_text())
    sd = info["saddle"]
    assert sd["certified"] and sd["kind"] == "saddle" and sd["index"] == 1 and sd["reduced_width"] == 1
    assert info["barrier_from"] == pytest.approx(sd["loss"]) and info["barrier_from"] > 0.01
    assert "index 1" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["connect", "{dir}", "--from", "0", "--to", "0"], "same point"),
    (["connect", "{dir}", "--from", "0", "--to", "3"], "not a global minimum"),
    (["connect", "{dir}", "--from", "0", "--to", "9"], "no point with id 9"),
    (["slice", "{dir}", "--point", "0", "--directions", "sideways"], "--directions"),
    (["slice", "{dir}", "--point", "0", "--through", "0", "1"], "--through"),
    (["slice", "{dir}", "--point", "0", "--n", "1"], "--n 1"),
    (["slice", "{dir}/nothing", "--point", "0"], "not found"),
])
def test_bad_input_is_one_line(wide, capsys, argv, needle):
    assert cli_main([a.format(dir=wide) for a in argv]) == 2
    assert needle in _error(capsys)


def test_connect_refuses_isolated_minima(narrow, capsys):
    assert cli_main(["connect", str(narrow), "--from", "0", "--to", "1"]) == 2
    err = _error(capsys)
    assert "isolated global minima" in err and "neb" in err


@pytest.mark.slow
def test_figure_connectivity_quick(tmp_path, capsys):
    assert cli_main(["figure", "connectivity", "--quick", "--out", str(tmp_path)]) == 0
    numbers = json.loads((tmp_path / "connectivity.json").read_text())
    assert (tmp_path / "connectivity.png").stat().st_size > 0
    assert numbers["zero_loss_path"]["certified"] and numbers["zero_loss_path"]["max_loss"] <= 1e-25
    sd = numbers["neb"]["saddle"]
    assert sd["certified"] and sd["index"] == 1 and sd["reduced_width"] == 1
    assert numbers["neb"]["barrier_from"] > 0.01
    assert "barrier heights" in capsys.readouterr().out
