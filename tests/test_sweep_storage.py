"""Results directory of a sweep: atomic chunk files, resume (also after SIGKILL), refusal of other configs, report.

These tests drive the real runner, storage and CLI with a stand-in engine (``fake_run_chunk``: per-id numbers drawn
from numpy's generator seeded by (init.seed, id), shaped like the real ChunkResult) so they run in seconds; the
real engine is exercised in test_sweep_engine.py.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import landscape  # noqa: F401  (x64)
from landscape.cli import main as cli_main
from landscape.config import ConfigError
from landscape.grid import expand_sweep
from landscape.report.finalize import finalize
from landscape.store import Chunk, SweepStore, load_arrays, load_manifest, load_points, plan_chunks
from landscape.sweep.execute import ChunkResult
from landscape.sweep.runner import auto_chunk_size, bytes_per_trajectory, run_sweep

CONFIG = """
[problem]
input_dim = 3
[teacher]
width = 2
[student]
width = 2
[init]
count = 10
seed = 3
[sweep]
grid = { "student.width" = [2, 3], "init.scale" = [0.01, 1.0] }
"""


def fake_run_chunk(cfg, start, count, *, problem=None, sleep=0.0):
    """Stand-in for landscape.sweep.execute.run_chunk: deterministic per (init.seed, id), independent of chunking."""
    ids = np.arange(start, start + count)
    m, d = cfg.student.width, cfg.problem.input_dim
    draws = [np.random.default_rng([cfg.init.seed, int(i)]) for i in ids]
    loss = np.array([g.random() for g in draws]) * cfg.init.scale
    w = np.stack([g.normal(size=(m, d)) for g in draws])
    eigs = np.sort(np.stack([g.normal(size=m * d + m) for g in draws]), axis=1)
    kind = np.where(loss < 0.2 * cfg.init.scale, "minimum", np.where(loss < 0.7 * cfg.init.scale, "saddle",
                                                                     "not_converged"))
    rows = pd.DataFrame({
        "id": ids, "loss": loss, "grad_norm": loss * 1e-12, "kind": kind, "index": (eigs < 0).sum(1),
        "is_global": loss < 0.05 * cfg.init.scale, "certified": kind != "not_converged",
        "flow_status": "converged", "n_steps": ids * 2,
        "label": [None if k != "minimum" else f"S{m}" for k in kind],  # often all None in a chunk
    })
    if sleep:
        time.sleep(sleep)
    curve = np.outer(loss, np.linspace(1, 0, 5))
    arrays = {"id": ids, "theta.w": w, "eigenvalues": eigs, "curve.t": np.tile(np.arange(5.0), (count, 1)),
              "curve.loss": curve, "curve.grad_norm": curve, "curve.param_norm": curve}
    return ChunkResult(rows=rows, arrays=arrays, timings={"flow_s": 0.01 * count})


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(CONFIG)
    return path


def run(config, out, **kw):
    """``landscape run`` without figures: the runner with the report's finalize as its completion hook."""
    kw.setdefault("chunk_size", 4)
    return run_sweep(config, out_dir=out, run_chunk=fake_run_chunk, figures=False, progress=False,
                     on_complete=finalize, **kw)


def test_plan_chunks_covers_ids_once():
    chunks = plan_chunks([10, 3], 4)
    assert [(c.point, c.start, c.count) for c in chunks] == [(0, 0, 4), (0, 4, 4), (0, 8, 2), (1, 0, 3)]
    assert all(c.run_count == 4 for c in chunks)


def test_run_writes_dataset_manifest_and_arrays(config, tmp_path, capsys):
    out = tmp_path / "res"
    assert run(config, out) == 0
    table = pd.read_parquet(out / "points.parquet")  # one Parquet dataset, read as one table
    assert len(table) == 40
    assert {"grid_point", "student.width", "init.scale", "init.seed", "id", "loss", "kind"} <= set(table.columns)
    assert len(list((out / "points.parquet").glob("*.parquet"))) == 4 * 3
    t = load_points(out)
    assert t.groupby("grid_point")["id"].apply(list).tolist() == [list(range(10))] * 4
    man = load_manifest(out)
    assert man["status"] == "complete" and man["chunk_size"] == 4 and man["n_trajectories"] == 40
    assert all(c["status"] == "done" for c in man["chunks"])
    assert [p["values"] for p in man["points"]][1] == {"student.width": 2, "init.scale": 1.0}
    assert "jax" in man["runs"][0]["versions"] and man["runs"][0]["executor"] == "local"
    # rows equal the engine's for each point (grid columns added in front)
    cfg1 = expand_sweep(__import__("tomllib").loads(CONFIG))[1].config
    ref = fake_run_chunk(cfg1, 0, 10)
    got = t[t["grid_point"] == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[ref.rows.columns].astype({"label": object}),
                                  ref.rows.astype({"label": object}), check_dtype=False)
    arr = load_arrays(out, 1)
    np.testing.assert_array_equal(arr["theta.w"], ref.arrays["theta.w"])
    assert (out / "arrays" / "p0001.npz").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sweep"]["n_points"] == 4 and len(summary["points"]) == 4
    assert summary["points"][1]["values"] == {"student.width": 2, "init.scale": 1.0}
    assert sum(summary["points"][1]["counts"].values()) == 10
    printed = capsys.readouterr().out
    assert "4 grid points, 40 of 40 trajectories" in printed


def test_same_config_gives_identical_tables_whatever_the_chunking(config, tmp_path):
    run(config, tmp_path / "a", chunk_size=4)
    run(config, tmp_path / "b", chunk_size=4)
    run(config, tmp_path / "c", chunk_size=7)
    a, b, c = (load_points(tmp_path / x) for x in "abc")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_resume_skips_done_chunks(config, tmp_path, monkeypatch):
    out = tmp_path / "res"
    calls = []

    def failing(cfg, start, count, **kw):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append((cfg.init.seed, start))
        return fake_run_chunk(cfg, start, count, **kw)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, out_dir=out, run_chunk=failing, chunk_size=4, figures=False, progress=False)
    assert len(load_points(out)) == 4 + 4 + 2 + 4 + 4
    assert load_manifest(out)["status"] == "running"
    done = list(calls)
    calls.clear()
    assert run_sweep(config, out_dir=out, run_chunk=lambda *a, **k: (calls.append(a[1]), fake_run_chunk(*a, **k))[1],
                     chunk_size=4, figures=False, progress=False) == 0
    assert len(calls) == 12 - len(done)
    run(config, tmp_path / "ref")
    pd.testing.assert_frame_equal(load_points(out), load_points(tmp_path / "ref"))


def test_other_config_is_refused_and_force_starts_over(config, tmp_path):
    out = tmp_path / "res"
    run(config, out)
    before = sorted(p.name for p in (out / "points.parquet").iterdir())
    with pytest.raises(ConfigError, match=r"different config \(init.count: 10 there, 12 now\).*--force") as e:
        run(config, out, overrides=["init.count=12"])
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in (out / "points.parquet").iterdir()) == before  # nothing touched
    # the CLI prints the line and exits 2
    assert cli_main(["run", str(config), "--out", str(out), "--set", "init.count=12"]) == 2
    assert run(config, out, overrides=["init.count=12"], force=True) == 0
    assert len(load_points(out)) == 48


def test_foreign_directory_is_refused(config, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a landscape results directory"):
        run(config, out)
    assert (out / "thesis.tex").read_text() == "precious"


def test_changed_chunk_size_on_resume_keeps_directory_plan(config, tmp_path, capsys):
    out = tmp_path / "res"
    run(config, out, chunk_size=4)
    assert run(config, out, chunk_size=3) == 0
    assert "chunk size 4" in capsys.readouterr().err
    assert len(load_points(out)) == 40


def test_dry_run_prints_grid_and_writes_nothing(config, tmp_path, capsys):
    out = tmp_path / "res"
    assert cli_main(["run", str(config), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "4 grid points, 40 trajectories" in text and "memory per chunk" in text
    assert "student.width" in text and "init.scale" in text
    assert not out.exists()


def test_bad_cli_input_is_one_line(config, tmp_path, capsys):
    assert cli_main(["run", str(config), "--dry-run", "--set", 'sweep.grid={"student.wdith"=[2]}']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "wdith" in err and "\n" not in err
    assert cli_main(["run", str(config), "--dry-run", "--chunk-size", "0"]) == 2
    assert "--chunk-size" in capsys.readouterr().err


def test_temp_files_are_ignored_and_cleaned(config, tmp_path):
    out = tmp_path / "res"
    run(config, out)
    junk = out / "points.parquet" / ".tmp-p0000-c000000.parquet-999"
    junk.write_bytes(b"partial")
    assert len(pd.read_parquet(out / "points.parquet")) == 40  # hidden names are not part of the dataset
    run(config, out)
    assert not junk.exists()


def test_chunk_size_estimates():
    from landscape.config import config_from_dict

    raw = {"problem": {"input_dim": 6}, "teacher": {"width": 6}, "student": {"width": 6}, "init": {"count": 1000}}
    small = bytes_per_trajectory(config_from_dict(raw))
    big = bytes_per_trajectory(config_from_dict({**raw, "student": {"width": 60}}))
    assert 0 < small < big
    points = expand_sweep(raw)
    assert auto_chunk_size(points, memory=(2**40, "cpu")) == 512  # capped at 512: 2 chunks (512 + 488)
    assert auto_chunk_size(points, memory=(200 * small * 4, "cpu")) == 192  # memory-bound (cpu uses 1/4)
    assert auto_chunk_size(expand_sweep({**raw, "init": {"count": 10}}), memory=(2**40, "cpu")) == 10
    assert auto_chunk_size(expand_sweep({**raw, "init": {"count": 700}}), memory=(2**40, "cpu")) == 384
    assert auto_chunk_size(points, memory=(2**40, "cpu"), n_devices=3) % 3 == 0


def test_store_write_chunk_drops_padding(tmp_path):
    points = expand_sweep({"problem": {"input_dim": 3}, "teacher": {"width": 2}, "student": {"width": 2},
                           "init": {"count": 6}})
    store = SweepStore.open(tmp_path / "s", resolved={"init": {"count": 6}}, cfg_hash="h", points=points, chunk_size=4)
    (c0, c1) = store.chunks()
    assert c1 == Chunk(0, 1, 4, 2, 4)
    res = fake_run_chunk(points[0].config, c1.start, c1.run_count)
    store.write_chunk(c1, res.rows, res.arrays)
    assert [c.name for c in store.pending()] == [c0.name]
    assert load_points(tmp_path / "s")["id"].tolist() == [4, 5]
    assert load_arrays(tmp_path / "s", 0)["theta.w"].shape == (2, 2, 3)
    store.close()


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from functools import partial
import landscape.sweep.executors as ex
from test_sweep_storage import fake_run_chunk
ex._run_chunk_fn = lambda: partial(fake_run_chunk, sleep=0.15)
from landscape.cli import main
# figures are not under test here, and take seconds
sys.exit(main(["run", {config!r}, "--out", {out!r}, "--chunk-size", "2", "--no-figures"]))
"""


def test_resume_after_sigkill_loses_nothing_and_duplicates_nothing(config, tmp_path):
    """`landscape run` in a subprocess, kill -9 after some chunks, re-run: same table as an uninterrupted run."""
    out = tmp_path / "killed"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(Path(__file__).parent), config=str(config), out=str(out)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 60
    n_done = 0
    while time.time() < deadline:
        n_done = len(list((out / "points.parquet").glob("*.parquet"))) if (out / "points.parquet").is_dir() else 0
        if n_done >= 5 or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run finished before it could be killed: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial_rows = load_points(out)
    assert 0 < len(partial_rows) < 40
    assert not partial_rows.duplicated(["grid_point", "id"]).any()
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    resumed = load_points(out)
    run(config, tmp_path / "ref", chunk_size=2)
    pd.testing.assert_frame_equal(resumed, load_points(tmp_path / "ref"))
    man = load_manifest(out)
    assert len(man["runs"]) == 2 and man["status"] == "complete"
    # rows written before the kill are byte-identical after the resume (never rewritten)
    merged = resumed.merge(partial_rows, on=["grid_point", "id"], suffixes=("", "_before"))
    assert len(merged) == len(partial_rows)
    np.testing.assert_array_equal(merged["loss"], merged["loss_before"])


def test_report_prints_table_and_writes_figures(config, tmp_path, capsys):
    out = tmp_path / "res"
    run(config, out)
    capsys.readouterr()
    assert cli_main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("4 grid points, 40 of 40 trajectories")
    header = next(line for line in lines if line.startswith("point"))
    assert "student.width" in header and "spurious" in header and "spur.rate" in header
    table = load_points(out)
    p0 = table[table["grid_point"] == 0]
    spurious = int(((p0["kind"] == "minimum") & ~p0["is_global"]).sum())
    row = next(line for line in lines if line.startswith("p0000")).split()
    assert int(row[header.split().index("spurious")]) == spurious
    assert float(row[header.split().index("spur.rate")]) == pytest.approx(spurious / 10, abs=1e-3)
    for name in ("sweep_rates.png", "sweep_kinds.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    assert cli_main(["report", str(tmp_path / "nothing")]) == 2


def test_load_point_arrays_reads_one_id(config, tmp_path):
    from landscape.store import load_point_arrays

    out = tmp_path / "res"
    run(config, out)
    full = load_arrays(out, 2)
    one = load_point_arrays(out, 6, grid_point=2)
    np.testing.assert_array_equal(one["theta.w"], full["theta.w"][6])
    assert one["id"] == 6
    for f in (out / "arrays").glob("p0002-c*.npz"):
        f.unlink()  # falls back on the consolidated file
    np.testing.assert_array_equal(load_point_arrays(out, 6, grid_point=2)["eigenvalues"], full["eigenvalues"][6])
    with pytest.raises(ConfigError, match="id 10 does not exist"):
        load_point_arrays(out, 10, grid_point=2)
    with pytest.raises(ConfigError, match="grid point 9 does not exist"):
        load_point_arrays(out, 0, grid_point=9)


def test_manifest_records_size_and_sha256_of_every_file(config, tmp_path):
    import hashlib

    out = tmp_path / "res"
    run(config, out)
    man = load_manifest(out)
    for c in man["chunks"]:
        for kind, path in (("parquet", out / "points.parquet" / f"{c['name']}.parquet"),
                           ("npz", out / "arrays" / f"{c['name']}.npz")):
            data = path.read_bytes()
            assert c["files"][kind] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert sorted(man["consolidated"]) == [f"arrays/p{p:04d}.npz" for p in range(4)]
    for rel, rec in man["consolidated"].items():
        assert rec["sha256"] == hashlib.sha256((out / rel).read_bytes()).hexdigest()
    # each Parquet chunk says whose and which it is (what rebuilds a lost manifest)
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(out / "points.parquet" / "p0002-c000001.parquet").metadata[b"landscape"])
    assert meta == {"format": "landscape-sweep/1", "config_hash": man["config_hash"], "chunk": "p0002-c000001",
                    "point": 2, "index": 1, "start": 4, "count": 4, "chunk_size": 4}
