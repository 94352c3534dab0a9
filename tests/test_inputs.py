"""Bad input through the command line: one line ``error: ...`` naming the key or file, exit code 2, no traceback.

Files (teacher and data ``.npz``), non-finite numbers and impossible sizes are refused at config validation, before
anything is built, compiled or written; sizes that cannot fit in memory are refused from arithmetic alone (fast, no
allocation). ``landscape count`` refuses widths it cannot count and prints huge counts in scientific form.
"""

import re
import resource
import time

import numpy as np
import pytest

from landscape.cli import main

BASE = """\
[problem]
input_dim = 4
loss = "sample"
n_samples = 20

[teacher]
kind = "gaussian"
width = 3

[student]
width = 3

[init]
count = 2

[flow]
t_max = 1.0
n_snapshots = 4
"""

GIB = 2**30


@pytest.fixture
def files(tmp_path):
    """A small config and good and bad input files in ``tmp_path``; returns a dict name -> path string."""
    t = tmp_path
    (t / "base.toml").write_text(BASE)
    np.savez(t / "teacher_ok.npz", w=np.eye(4)[:3], a=np.ones(3))
    np.savez(t / "teacher_wshape.npz", w=np.ones((3, 5)), a=np.ones(3))
    np.savez(t / "teacher_w1d.npz", w=np.ones(12), a=np.ones(3))
    np.savez(t / "teacher_no_w.npz", a=np.ones(3))
    np.savez(t / "teacher_nan.npz", w=np.full((3, 4), np.nan), a=np.ones(3))
    np.savez(t / "teacher_inf_a.npz", w=np.eye(4)[:3], a=np.array([1.0, np.inf, 1.0]))
    np.savez(t / "teacher_bad_b.npz", w=np.eye(4)[:3], a=np.ones(3), b=np.ones(5))
    np.savez(t / "teacher_bias.npz", w=np.eye(4)[:3], a=np.ones(3), b=np.ones(3))
    np.savez(t / "teacher_str.npz", w=np.array([["x"] * 4] * 3), a=np.ones(3))
    np.savez(t / "teacher_obj.npz", w=np.array([None, None, None], dtype=object), a=np.ones(3))
    np.save(t / "teacher.npy", np.eye(4)[:3])
    (t / "text.npz").write_text("w = [[1, 0, 0, 0]]\n")
    (t / "empty.npz").write_bytes(b"")
    np.savez(t / "data_ok.npz", x=np.random.default_rng(0).standard_normal((20, 4)))
    np.savez(t / "data_xdim.npz", x=np.ones((20, 5)))
    np.savez(t / "data_ylen.npz", x=np.ones((20, 4)), y=np.ones(19))
    np.savez(t / "data_xnan.npz", x=np.full((20, 4), np.nan))
    np.savez(t / "data_yinf.npz", x=np.ones((20, 4)), y=np.full(20, np.inf))
    np.savez(t / "data_no_x.npz", y=np.ones(20))
    np.savez(t / "data_empty.npz", x=np.ones((0, 4)))
    out = {p.name: str(p) for p in t.iterdir()}
    out["missing.npz"] = str(t / "missing.npz")
    return out


def _run(capsys, argv):
    t0 = time.perf_counter()
    rc = main(argv)
    elapsed = time.perf_counter() - t0
    cap = capsys.readouterr()
    return rc, cap.out, cap.err, elapsed


def _assert_one_line(rc, err, fragments):
    assert "Traceback" not in err
    assert rc == 2, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _teacher(name):
    return ["--set", 'teacher.kind="file"', "--set", f'teacher.file="@{name}"']


def _data(name):
    return ["--set", f'problem.data_file="@{name}"']


FILE_CASES = [
    # (overrides, fragments of the one line)
    (_teacher("teacher_wshape.npz"), ["teacher.file", "teacher_wshape.npz", "(3, 5)", "teacher.width"]),
    (_teacher("teacher_w1d.npz"), ["teacher.file", "teacher_w1d.npz", "2-D"]),
    (_teacher("teacher_no_w.npz"), ["teacher.file", "teacher_no_w.npz", "'w'"]),
    (_teacher("teacher_nan.npz"), ["teacher.file", "teacher_nan.npz", "non-finite"]),
    (_teacher("teacher_inf_a.npz"), ["teacher.file", "teacher_inf_a.npz", "a has 1 non-finite"]),
    (_teacher("teacher_bad_b.npz"), ["teacher.file", "teacher_bad_b.npz", "b of shape (5,)"]),
    (_teacher("teacher_str.npz"), ["teacher.file", "teacher_str.npz", "real numbers"]),
    (_teacher("teacher_obj.npz"), ["teacher.file", "teacher_obj.npz", "object arrays"]),
    (_teacher("teacher.npy"), ["teacher.file", "teacher.npy", "not an .npz archive", "numpy.savez"]),
    (_teacher("text.npz"), ["teacher.file", "text.npz", "not an .npz archive"]),
    (_teacher("empty.npz"), ["teacher.file", "empty.npz", "not an .npz archive"]),
    (_teacher("missing.npz"), ["teacher.file", "missing.npz", "not found"]),
    (_teacher("teacher_bias.npz") + ["--set", 'problem.loss="population"'],
     ["teacher.file", "teacher_bias.npz", "population"]),
    (_data("data_xdim.npz"), ["problem.data_file", "data_xdim.npz", "(20, 5)", "problem.input_dim"]),
    (_data("data_ylen.npz"), ["problem.data_file", "data_ylen.npz", "y has shape (19,)"]),
    (_data("data_xnan.npz"), ["problem.data_file", "data_xnan.npz", "x has 80 non-finite"]),
    (_data("data_yinf.npz"), ["problem.data_file", "data_yinf.npz", "y has 20 non-finite"]),
    (_data("data_no_x.npz"), ["problem.data_file", "data_no_x.npz", "no array 'x'"]),
    (_data("data_empty.npz"), ["problem.data_file", "data_empty.npz", "n >= 1"]),
    (_data("text.npz"), ["problem.data_file", "text.npz", "not an .npz archive"]),
    (_data("missing.npz"), ["problem.data_file", "missing.npz", "not found"]),
]


def _fill(argv, files):
    """Replace ``@name`` in the overrides by the path of the file ``name``."""
    return [re.sub(r"@([\w.]+)", lambda m: files[m.group(1)], a) for a in argv]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("overrides, fragments", FILE_CASES, ids=[c[1][1] + "-" + c[1][0] for c in FILE_CASES])
def test_bad_files_are_one_line_before_anything_runs(capsys, files, tmp_path, overrides, fragments, dry_run):
    out_dir = tmp_path / "results"
    argv = ["run", files["base.toml"], "--out", str(out_dir), "--no-figures", *_fill(overrides, files)]
    rc, out, err, elapsed = _run(capsys, argv + (["--dry-run"] if dry_run else []))
    _assert_one_line(rc, err, fragments)
    assert not out_dir.exists(), "nothing may be written (or run) before the input files are checked"
    assert elapsed < 5, "the files are checked at validation, before any compilation"


def test_good_files_pass_validation(capsys, files, tmp_path):
    argv = ["run", files["base.toml"], "--out", str(tmp_path / "r"), "--dry-run",
            *_fill(_teacher("teacher_ok.npz") + _data("data_ok.npz"), files)]
    rc, out, err, _ = _run(capsys, argv)
    assert rc == 0, err
    assert "1 grid point" in out


VALUE_CASES = [
    (["init.scale=inf"], ["init.scale", "finite"]),
    (["init.scale=nan"], ["init.scale", "finite"]),
    (["flow.t_max=inf"], ["flow.t_max", "finite"]),
    (["flow.rtol=nan"], ["flow.rtol", "finite"]),
    (["polish.tol=inf"], ["polish.tol", "finite"]),
    (["analysis.global_loss_tol=nan"], ["analysis.global_loss_tol", "finite"]),
    (["analysis.global_loss_tol=-1"], ["analysis.global_loss_tol", ">= 0"]),
    (["analysis.zero_tol=inf"], ["analysis.zero_tol", "finite"]),
    (["analysis.zero_tol=1.5"], ["analysis.zero_tol", "< 1"]),
    (["teacher.output_weights=true"], ["teacher.output_weights", "True"]),
    (["teacher.output_weights=nan"], ["teacher.output_weights", "finite"]),
    (["teacher.output_weights=[1.0, inf, 1.0]"], ["teacher.output_weights", "finite"]),
    (["teacher.output_weights=[1, true, 1]"], ["teacher.output_weights", "not a number"]),
    (['teacher.output_weights=["a", "b", "c"]'], ["teacher.output_weights", "'a' is not a number"]),
    (["teacher.output_weights={ a = 1 }"], ["teacher.output_weights"]),
    (["student.train_output_weights=false", "student.output_weights=nan"], ["student.output_weights", "finite"]),
    (["student.train_output_weights=false", 'student.output_weights=["a", "b", "c"]'],
     ["student.output_weights", "not a number"]),
    (['teacher.output_weights="gaussian"', "student.width=4", "student.train_output_weights=false"],
     ["student.output_weights", "teacher", "student.width = 4"]),
    (['teacher.kind="file"', 'teacher.file="t.npz"', "teacher.hidden_widths=[5, 3]"],
     ["teacher.kind", "teacher.hidden_widths"]),
]


@pytest.mark.parametrize("overrides, fragments", VALUE_CASES, ids=[" ".join(c[0]) for c in VALUE_CASES])
def test_bad_values_are_one_line(capsys, files, tmp_path, overrides, fragments):
    argv = ["run", files["base.toml"], "--out", str(tmp_path / "r"), "--dry-run"]
    for o in overrides:
        argv += ["--set", o]
    rc, out, err, _ = _run(capsys, argv)
    _assert_one_line(rc, err, fragments)


def test_non_finite_value_in_a_sweep_names_the_point(capsys, files, tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(BASE + '\n[sweep]\ngrid = { "init.scale" = [1.0, inf] }\n')
    rc, out, err, _ = _run(capsys, ["run", str(path), "--out", str(tmp_path / "r"), "--dry-run"])
    _assert_one_line(rc, err, ["sweep point", "init.scale", "finite"])


# (overrides, fragments, memory): sizes far beyond any machine's memory (>= 100 TiB) checked against this machine's,
# and bounds that only bite at moderate sizes checked against a pretended 16 GiB; refused from arithmetic alone
SIZE_CASES = [
    (["student.width=1000000"], ["student.width = 1000000", "trainable parameters", "Hessian", "lower student.width"],
     None),
    (["student.hidden_widths=[1000000, 3]"], ["student.hidden_widths", "Hessian"], None),
    (["problem.input_dim=1000000000"], ["problem.input_dim = 1000000000", "lower problem.input_dim"], None),
    (["teacher.width=10000000000000"], ["teacher.width", "teacher parameters", "lower teacher.width"], None),
    (['problem.loss="population"', "teacher.width=100000000"], ["teacher.width", "kernel matrices"], None),
    (["problem.n_samples=10000000000000"], ["problem.n_samples = 10000000000000", "lower problem.n_samples"], None),
    (["init.count=100000000000000"], ["init.count = 100000000000000", "lower init.count"], None),
    (["flow.n_snapshots=100000000000000"], ["flow.n_snapshots = 100000000000000", "lower flow.n_snapshots"], None),
    (['problem.loss="population"', "student.width=2000"], ["2000 x 2003 kernel matrices", "lower student.width"],
     16 * GIB),
    (["problem.n_samples=100000000"], ["problem.n_samples = 100000000", "tangents", "> 16.0 GiB"], 16 * GIB),
    (["flow.save_params=true", "flow.n_snapshots=100000000"], ["init.count = 2", "flow.save_params = false"],
     16 * GIB),
]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("overrides, fragments, memory", SIZE_CASES, ids=[" ".join(c[0]) for c in SIZE_CASES])
def test_huge_sizes_are_refused_fast_without_allocating(capsys, files, tmp_path, monkeypatch, overrides, fragments,
                                                        memory, dry_run):
    import landscape.config

    if memory is not None:
        monkeypatch.setattr(landscape.config, "memory_limit", lambda: memory)
    out_dir = tmp_path / "results"
    argv = ["run", files["base.toml"], "--out", str(out_dir)] + (["--dry-run"] if dry_run else [])
    for o in overrides:
        argv += ["--set", o]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rc, out, err, elapsed = _run(capsys, argv)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _assert_one_line(rc, err, [*fragments, "of memory on this machine"])
    assert elapsed < 5
    assert rss_after - rss_before < GIB
    assert not out_dir.exists()


def test_the_issue_example_width_names_the_size_and_the_fix(capsys, files, tmp_path, monkeypatch):
    import landscape.config

    monkeypatch.setattr(landscape.config, "memory_limit", lambda: 23 * GIB)
    argv = ["run", files["base.toml"], "--out", str(tmp_path / "r"), "--set", 'problem.loss="population"',
            "--set", "student.width=100000"]
    rc, out, err, elapsed = _run(capsys, argv)
    _assert_one_line(rc, err, ["student.width = 100000 (with problem.input_dim = 4) gives 500000 trainable "
                               "parameters; one dense float64 Hessian (500000 x 500000) needs 1.8 TiB > 23.0 GiB"])
    assert elapsed < 5


def test_count_refuses_a_huge_width_in_one_line(capsys):
    rc, out, err, elapsed = _run(capsys, ["count", "--teacher-width", "3", "--student-width", "100000"])
    _assert_one_line(rc, err, ["--student-width 100000", "10000"])
    assert elapsed < 5 and out == ""


@pytest.mark.parametrize("json_out", [False, True], ids=["table", "json"])
def test_count_at_the_largest_width_is_fast_and_scientific(capsys, json_out):
    import json

    argv = ["count", "--teacher-width", "3", "--student-width", "10000", "--activation", "tanh"]
    rc, out, err, elapsed = _run(capsys, argv + (["--json"] if json_out else []))
    assert rc == 0 and err == "" and elapsed < 5
    if json_out:
        rep = json.loads(out)
        assert rep["T"].startswith("3.98") and rep["T"].endswith("e+6020") and rep["exact"] is False
        assert rep["G"]["1"] == 1 and rep["G"]["10000"].endswith("e+35659")  # G(m, m) = m!
    else:
        assert "T(3, 10000) = 3.980e+6020" in out and max(len(line) for line in out.splitlines()) < 200


def test_count_prints_long_exact_integers_in_scientific_form(capsys):
    from landscape.analysis.symmetry.counting import count_T

    rc, out, err, _ = _run(capsys, ["count", "--teacher-width", "3", "--student-width", "60"])
    assert rc == 0
    exact = count_T(3, 60)
    assert len(str(exact)) > 30 and str(exact) not in out
    assert f"T(3, 60) = {exact:.3e}" in out  # e.g. 1.329e+36
    rc, out, err, _ = _run(capsys, ["count", "--teacher-width", "3", "--student-width", "60", "--json"])
    import json

    assert json.loads(out)["T"] == exact  # machines get the exact integer
