"""Early hand-off to Newton (landscape/analysis/handoff.py): the guard's rule, and on the README problem the same
kinds, labels and losses as flows run to grad_tol, with every lane Newton did not confirm flowed on exactly."""

from pathlib import Path

import jax
import numpy as np
import pytest

import landscape as ls
from landscape.analysis.handoff import padded_indices, reflow_mask
from landscape.config import ConfigError, config_from_dict, read_raw_config
from landscape.flow.trajectory import CONVERGED, NONFINITE, T_MAX


def test_reflow_mask_keeps_only_descending_certified_minima_of_loose_stops():
    status = np.array([CONVERGED, CONVERGED, CONVERGED, CONVERGED, CONVERGED, T_MAX, NONFINITE])
    kind = np.array(["minimum", "saddle", "minimum", "minimum", "degenerate", "saddle", "not_converged"])
    flow_loss = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, np.inf])
    loss = np.array([0.9, 0.9, 1.0 + 1e-6, 0.5, 0.9, 0.9, np.nan])
    certified = np.array([True, True, True, False, True, False, False])
    redo = reflow_mask(status, {"kind": kind}, loss, flow_loss, certified)
    # confirmed minimum | saddle | minimum above the flow's loss | not certified | degenerate | t_max | diverged
    assert redo.tolist() == [False, True, True, True, True, False, False]
    assert reflow_mask(status[:1], {"kind": kind[:1]}, [1.0 + 1e-13], [1.0], [True]).tolist() == [False]  # rounding


def test_padded_indices_use_a_bucket_size():
    assert padded_indices(np.array([5, 9, 11]), [64, 16, 8]).tolist() == [5, 9, 11, 5, 5, 5, 5, 5]
    assert len(padded_indices(np.arange(10), [64, 16, 8])) == 16


def test_handoff_tol_must_not_be_negative():
    raw = read_raw_config(Path(__file__).resolve().parents[1] / "configs" / "quickstart.toml", [])
    raw.setdefault("polish", {})["handoff_tol"] = -1.0
    with pytest.raises(ConfigError, match="polish.handoff_tol"):
        config_from_dict(raw)


@pytest.mark.slow
def test_handoff_matches_flows_run_to_grad_tol_on_the_readme_problem():
    # the README's problem and flow (tests/test_api.py compiles the same shapes)
    problem = ls.TeacherStudent(teacher=ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1)),
                                student=ls.TwoLayer(width=3, activation=ls.ReLU()), loss=ls.PopulationLoss())
    flow = ls.GradientFlow(t_max=300.0)
    tight = ls.explore(problem, flow, key=jax.random.key(0), n=64, polish=ls.Polish(handoff_tol=None))
    early = ls.explore(problem, flow, key=jax.random.key(0), n=64)  # default: hand-off at |grad| 1e-3
    assert "handoff_reflowed" not in tight.timings and early.timings["handoff_reflowed"] > 0
    t, e = tight.table(), early.table()
    assert (t["kind"] == e["kind"]).all() and (t["is_global"] == e["is_global"]).all()
    assert (t["certified"] == e["certified"]).all() and (t["sym_class"] == e["sym_class"]).all()
    handed = ((e["flow_status"] == "CONVERGED") & (e["flow_grad_norm"] > 1e-6)).to_numpy()  # loose stops kept
    assert handed.any() and (e["kind"][handed] == "minimum").all() and (e["flow_grad_norm"][handed] <= 1e-3).all()
    assert (e["n_steps"][handed] < t["n_steps"][handed]).all()
    # every other lane (re-flowed, or never stopped by the loose tolerance) ran the tight flow itself
    rest = ~handed
    np.testing.assert_array_equal(e["n_steps"][rest], t["n_steps"][rest])
    np.testing.assert_allclose(e["flow_loss"][rest], t["flow_loss"][rest], rtol=1e-9, atol=1e-20)
    np.testing.assert_allclose(e["loss"], t["loss"], rtol=1e-9, atol=1e-20)
    assert e["flow_status"][rest].tolist() == t["flow_status"][rest].tolist()  # handed lanes: tight may hit t_max
    # the re-flowed lanes were certified and analysed on their own and merged in: the tight run's spectra
    assert (e["analysis_status"] == "ok").all()
    np.testing.assert_allclose(early.arrays()["eigenvalues"][rest], tight.arrays()["eigenvalues"][rest],
                               rtol=1e-7, atol=1e-9)


def test_merged_analysis_keeps_other_rows_and_whole_strings():
    from landscape.analysis.analyzer import AnalysisResult
    from landscape.analysis.explore import _merge_analysis

    full = AnalysisResult(columns={"kind": np.array(["minimum", "saddle", "minimum"]), "index": np.array([0, 1, 0])},
                          arrays={"eigenvalues": np.zeros((3, 2))}, status=np.array(["ok", "ok", "ok"]))
    sub = AnalysisResult(columns={"kind": np.array(["not_converged", "not_converged"]), "index": np.array([-1, -1]),
                                  "extra": np.array([1.5, 1.5])},
                         arrays={"eigenvalues": np.ones((2, 2))}, status=np.array(["hessian: failed", "ok"]))
    out = _merge_analysis(full, sub, np.array([1]))  # row 1 from the sub-batch's first row (its second is padding)
    assert out.columns["kind"].tolist() == ["minimum", "not_converged", "minimum"]
    assert out.columns["index"].tolist() == [0, -1, 0] and list(out.columns) == ["kind", "index", "extra"]
    assert np.isnan(out.columns["extra"][[0, 2]]).all() and out.columns["extra"][1] == 1.5
    assert out.arrays["eigenvalues"].tolist() == [[0, 0], [1, 1], [0, 0]]
    assert out.status.tolist() == ["ok", "hessian: failed", "ok"]
