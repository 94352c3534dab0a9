"""Counting symmetry-induced subspaces: closed forms vs brute-force enumeration and vs the analyzer's labels."""

import json
from argparse import Namespace
from math import comb

import numpy as np
import pytest
from test_symmetry_reduce import make_problem

import landscape  # noqa: F401  (x64)
from landscape.analysis.symmetry import (
    brute_force_G,
    brute_force_T,
    count_G,
    count_T,
    count_T_closed,
    embed,
    identify,
    reduce_two_layer,
    stirling2,
    teacher_reduction,
)
from landscape.analysis.symmetry.counting import enumerate_maps
from landscape.config import ConfigError
from landscape.report import count as count_cmd


def test_stirling_recurrence_and_sum():
    # sum_k S(n, k) = Bell numbers 1, 1, 2, 5, 15, 52, 203
    assert [sum(stirling2(n, k) for k in range(n + 1)) for n in range(7)] == [1, 1, 2, 5, 15, 52, 203]
    # S(n, 2) = 2^(n-1) - 1
    assert all(stirling2(n, 2) == 2 ** (n - 1) - 1 for n in range(2, 10))


@pytest.mark.parametrize("r,m", [(r, m) for r in range(1, 4) for m in range(r, 6)])
def test_closed_forms_match_enumeration(r, m):
    assert count_G(r, m) == brute_force_G(r, m)
    assert count_T(r, m) == brute_force_T(r, m) == count_T_closed(r, m)
    assert count_T(r, m, sign_flips=True) == brute_force_T(r, m, sign_flips=True)
    assert count_T(r, m, zero_inputs=True) == brute_force_T(r, m, zero_inputs=True)


def test_papers_values():
    assert (brute_force_T(2, 3), brute_force_T(3, 5), brute_force_G(2, 4), brute_force_G(3, 5)) == (12, 390, 14, 150)


@pytest.mark.parametrize("act,sign_flips", [("sigmoid4_softplus", False), ("erf", True)])
def test_every_enumerated_subspace_is_a_distinct_global_minimum_subspace(act, sign_flips):
    """Build a point in each enumerated subspace (r* = 2, m = 3); all are zero-loss and get distinct subspace ids."""
    P, _ = make_problem(act, r_star=2, m=3, loss="sample")
    tp = {k: np.asarray(v) for k, v in P.teacher_params.items()}
    teacher = teacher_reduction(P)
    rng = np.random.default_rng(0)
    ids, losses = set(), []
    maps = list(enumerate_maps(2, 3, zeros=True, sign_flips=sign_flips))
    for f in maps:
        assign = [-1 if o == "z" else o[0] for o in f]
        beta = np.zeros(3)
        for k in range(2):
            mem = [j for j in range(3) if assign[j] == k]
            b = rng.uniform(0.2, 1.0, len(mem))
            beta[mem] = b / b.sum()
        nz = sum(1 for o in f if o == "z")
        th = embed(tp, assign, beta, zero_incoming=rng.standard_normal((nz, 3)))
        s = np.array([o[1] if o != "z" else 1 for o in f], float)  # odd activation: flip (w_j, a_j) -> -(w_j, a_j)
        th = {"w": th["w"] * s[:, None], "a": th["a"] * s}
        losses.append(float(P.loss(th)))
        red = reduce_two_layer(th, P.student.activation, x=P.x)
        ident = identify(red, loss=losses[-1], teacher=teacher, global_loss_tol=1e-20)
        assert ident.sym_class == "global_minimum"
        ids.add(ident.subspace_id)
    assert max(losses) < 1e-25
    assert len(maps) == count_T(2, 3, sign_flips=sign_flips) == len(ids)


def test_count_cli_table_and_json(capsys):
    args = Namespace(teacher_width=2, student_width=4, input_dim=3, bias=False, activation="sigmoid4_softplus",
                     frozen_output=False, json=True)
    assert count_cmd.main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["T"] == rep["T_closed_form"] == count_T(2, 4)
    glob = [row for row in rep["subspaces"] if row["kind"] == "global"]
    assert sum(row["count"] for row in glob) == rep["T"]
    # dimension of a global subspace with j zero neurons: (m - j - r*) split ratios + j d free incoming entries
    assert {row["zeros"]: row["dim"] for row in glob} == {j: (4 - j - 2) + 3 * j for j in range(3)}
    assert all(row["count"] == comb(4, row["zeros"]) * count_G(2, 4 - row["zeros"]) for row in glob)
    args.json = False
    count_cmd.main(args)
    assert "T(2, 4) = 50" in capsys.readouterr().out


def test_count_cli_rejects_bad_widths():
    with pytest.raises(ConfigError, match="student-width"):
        count_cmd.count_report(3, 2)
