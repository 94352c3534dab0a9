"""Fault injection: every fault ends in a complete table equal to an uninterrupted run's, or in one line and exit 2.

Never a traceback, never a silently wrong table. Faults: SIGKILL at random moments of a run (then resume); truncated
or bit-flipped chunk files (Parquet and ``.npz``) and consolidated files; a damaged or missing manifest; a results
directory that cannot be written (read-only, under a file, failing mid-run); a batch whose every point diverged.

The runs use the stand-in engine of test_sweep_storage (``fake_run_chunk``, deterministic per (init.seed, id)),
in-process where possible, so the whole file takes seconds; the random choices come from seeded generators.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_sweep_storage import CONFIG, fake_run_chunk

import landscape  # noqa: F401  (x64)
import landscape.sweep.executors as executors
from landscape.cli import main as cli_main
from landscape.config import ConfigError
from landscape.report.finalize import finalize
from landscape.store import StoreError, load_arrays, load_manifest, load_point_arrays, load_points
from landscape.sweep.execute import ChunkResult
from landscape.sweep.runner import run_sweep

N_POINTS = 4  # CONFIG: a 2 x 2 grid, 10 initialisations each
FIX = "re-run 'landscape run'"


def run(config, out, **kw):
    """``landscape run`` in-process with the stand-in engine, no figures."""
    kw.setdefault("chunk_size", 4)
    kw.setdefault("run_chunk", fake_run_chunk)
    return run_sweep(config, out_dir=out, figures=False, progress=False, on_complete=finalize, **kw)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "sweep.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """An uninterrupted run: its directory, table and arrays per grid point."""
    out = tmp_path_factory.mktemp("ref") / "res"
    assert run(config, out) == 0
    return out, load_points(out), [load_arrays(out, p) for p in range(N_POINTS)]


def same_as_reference(out, reference):
    _, table, arrays = reference
    pd.testing.assert_frame_equal(load_points(out), table)
    for p in range(N_POINTS):
        got = load_arrays(out, p)
        assert set(got) == set(arrays[p])
        for k in got:
            np.testing.assert_array_equal(got[k], arrays[p][k])
    man = load_manifest(out)
    assert man["status"] == "complete" and all(c["status"] == "done" and c["files"] for c in man["chunks"])
    assert json.loads((out / "summary.json").read_text())["sweep"]["n_trajectories"] == 40


def one_error_line(err: str) -> str:
    progress = ("traj/s", "chunks:")  # the progress bar, closed before the error is printed
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not any(p in line
                                                                                            for p in progress)]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def copy_of(reference, tmp_path, name="res"):
    out = tmp_path / name
    shutil.copytree(reference[0], out)
    return out


def damage(path: Path, rng, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: int(rng.integers(0, len(data)))]
    else:  # flip one to three bits anywhere (header, data pages, footer)
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, len(data)))
            data[at] ^= 1 << int(rng.integers(0, 8))
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------------- SIGKILL at random moments
ZYGOTE = """
import os, sys
sys.path.insert(0, {tests!r})
from functools import partial
import landscape.sweep.executors as ex
from test_sweep_storage import fake_run_chunk
ex._run_chunk_fn = lambda: partial(fake_run_chunk, sleep=0.03)
from landscape.cli import main
import landscape.report.finalize, landscape.sweep.runner, landscape.sweep.execute, tqdm.auto  # noqa
# jax is imported but no backend is started: each forked child starts its own, as a fresh `landscape run` would
for n, line in enumerate(sys.stdin):
    pid = os.fork()
    if pid == 0:
        err = os.open(os.path.join({tmp!r}, f"stderr-{{n}}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(err, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os._exit(main(["run", {config!r}, "--out", {out!r}, "--chunk-size", "2", "--no-figures"]))
    print(pid, flush=True)
    sys.stdin.readline()  # reap only when told: the pid stays ours until the test has killed it
    print(os.waitpid(pid, 0)[1], flush=True)
"""


def test_sigkill_at_random_moments_then_resume(config, reference, tmp_path):
    """`landscape run` killed with SIGKILL at seeded random moments (in chunk writes, manifest writes, the final
    consolidation and summary), four times over; then resumed: the table equals the uninterrupted run's.

    Each run is `landscape.cli.main` in a process forked from a zygote that has done the imports, so a kill costs
    no interpreter start-up; it is killed when a seeded number of chunk files exist, plus a random jitter.
    """
    out = tmp_path / "killed"
    script = tmp_path / "zygote.py"
    script.write_text(ZYGOTE.format(tests=str(Path(__file__).parent), tmp=str(tmp_path), config=str(config),
                                    out=str(out)))
    zygote = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, "JAX_PLATFORMS": "cpu"}, text=True)
    rng = np.random.default_rng(20240607)
    t1 = int(rng.integers(1, 6))
    t2 = int(rng.integers(t1 + 2, 12))
    t3 = int(rng.integers(t2 + 2, 19))
    plan = [(t1, rng.uniform(0, 0.04)), (t2, rng.uniform(0, 0.04)), (t3, rng.uniform(0, 0.04)),
            (20, rng.uniform(0, 1.0))]  # the last one: in the consolidation, the summary, or after the end
    ref_table = reference[1].set_index(["grid_point", "id"])
    try:
        for n, (target, jitter) in enumerate(plan):
            zygote.stdin.write("run\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            deadline = time.time() + 60
            while time.time() < deadline and len(list(out.glob("points.parquet/*.parquet"))) < target:
                time.sleep(0.005)
            time.sleep(jitter)
            os.kill(pid, signal.SIGKILL)
            zygote.stdin.write("reap\n")
            zygote.stdin.flush()
            status = int(zygote.stdout.readline())
            err = (tmp_path / f"stderr-{n}").read_text()
            assert os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == 0, err
            assert "Traceback" not in err
            # what is there is a correct part of the reference: no duplicate, no changed number, no damage
            try:
                part = load_points(out)
            except StoreError as e:
                pytest.fail(f"a kill damaged the directory: {e}")
            assert not part.duplicated(["grid_point", "id"]).any()
            pd.testing.assert_frame_equal(part.set_index(["grid_point", "id"]),
                                          ref_table.loc[part.set_index(["grid_point", "id"]).index])
    finally:
        zygote.stdin.close()
        zygote.kill()
        zygote.wait()
    assert run(config, out, chunk_size=2) == 0
    same_as_reference(out, reference)
    assert not (out / "damaged").exists()  # nothing was found damaged: a kill leaves whole files only


# ---------------------------------------------------------------------- damaged chunk files
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_damaged_chunk_files_fail_reads_in_one_line_and_are_recomputed_on_resume(config, reference, tmp_path,
                                                                                  capsys, seed):
    out = copy_of(reference, tmp_path)
    rng = np.random.default_rng(seed)
    files = sorted([*(out / "points.parquet").glob("p*.parquet"), *(out / "arrays").glob("p*-c*.npz")])
    hit = [files[i] for i in rng.choice(len(files), size=3, replace=False)]
    for f in hit:  # without recorded checksums (seed 2) a flipped bit in zip or Parquet headers may be harmless
        damage(f, rng, "truncate" if seed == 2 else rng.choice(["truncate", "flip"]))
    if seed == 2:  # as after a kill inside the manifest's write interval: no checksums recorded, files read whole
        man = json.loads((out / "manifest.json").read_text())
        for c in man["chunks"]:
            c.pop("files")
        (out / "manifest.json").write_text(json.dumps(man))
    damaged_chunks = sorted({f.stem for f in hit})
    parquet_hit = any(f.suffix == ".parquet" for f in hit)
    capsys.readouterr()

    # reading without resuming: one line naming a damaged file and the fix, exit code 2
    if parquet_hit:
        with pytest.raises(StoreError, match=FIX):
            load_points(out)
        assert cli_main(["report", str(out), "--no-figures"]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert any(str(f) in line for f in hit) and FIX in line
    npz = next((f for f in hit if f.suffix == ".npz"), None)
    if npz is not None:
        point, start = int(npz.stem[1:5]), int(npz.stem[7:]) * 4
        with pytest.raises(StoreError, match=FIX):
            load_point_arrays(out, start, grid_point=point)
    chunk = damaged_chunks[0]
    gp, first_id = int(chunk[1:5]), int(chunk[7:]) * 4
    assert cli_main(["hessian", str(out), "--point", str(first_id), "--grid-point", str(gp)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert FIX in line and ("damaged" in line or "truncated" in line or "unreadable" in line)

    # resuming recomputes exactly the damaged chunks, says so, and keeps the damaged files aside
    calls = []

    def counting(cfg, start, count, **kw):
        calls.append((cfg.init.seed, start))
        return fake_run_chunk(cfg, start, count, **kw)

    assert run(config, out, run_chunk=counting) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: chunk")]
    assert sorted(w.split()[2].rstrip(":") for w in warnings) == damaged_chunks
    assert all("recomputing it" in w for w in warnings)
    assert len(calls) == len(damaged_chunks)
    same_as_reference(out, reference)
    assert {f.name for f in hit} <= {p.name for p in (out / "damaged").iterdir()}
    # a second resume finds nothing to do and nothing damaged
    assert run(config, out, run_chunk=counting) == 0
    assert len(calls) == len(damaged_chunks) and "warning" not in capsys.readouterr().err


def test_missing_chunk_files_are_recomputed(config, reference, tmp_path, capsys):
    out = copy_of(reference, tmp_path)
    (out / "points.parquet" / "p0001-c000002.parquet").unlink()
    (out / "arrays" / "p0003-c000000.npz").unlink()
    with pytest.raises(StoreError, match=r"p0001-c000002.parquet is missing"):
        load_points(out)
    capsys.readouterr()
    assert run(config, out) == 0
    err = capsys.readouterr().err
    assert "chunk p0001-c000002: points.parquet/p0001-c000002.parquet is missing" in err
    assert "chunk p0003-c000000: arrays/p0003-c000000.npz is missing" in err
    same_as_reference(out, reference)


def test_damaged_consolidated_arrays(config, reference, tmp_path, capsys):
    out = copy_of(reference, tmp_path)
    damage(out / "arrays" / "p0001.npz", np.random.default_rng(5), "truncate")
    # the chunk files are all there: readers use them, with the right numbers
    np.testing.assert_array_equal(load_arrays(out, 1)["theta.w"], reference[2][1]["theta.w"])
    # resume rebuilds it from the chunk files, and says so
    capsys.readouterr()
    assert run(config, out) == 0
    assert "warning: arrays/p0001.npz is truncated" in capsys.readouterr().err
    same_as_reference(out, reference)
    assert load_manifest(out)["consolidated"]["arrays/p0001.npz"]["size"] == (out / "arrays/p0001.npz").stat().st_size
    # damaged, and the chunk files it was built from are gone: one line
    damage(out / "arrays" / "p0002.npz", np.random.default_rng(6), "flip")
    for f in (out / "arrays").glob("p0002-c*.npz"):
        f.unlink()
    with pytest.raises(StoreError, match=r"p0002.npz is damaged \(checksum mismatch\) and some chunk files"):
        load_arrays(out, 2)
    # ... and the fix it names works
    assert run(config, out) == 0
    same_as_reference(out, reference)


def test_stray_chunk_file_is_moved_out_of_the_table(config, reference, tmp_path, capsys):
    out = copy_of(reference, tmp_path)
    shutil.copy(out / "points.parquet" / "p0000-c000000.parquet", out / "points.parquet" / "p0000-c000009.parquet")
    assert run(config, out) == 0
    assert "p0000-c000009.parquet is not a chunk of this sweep" in capsys.readouterr().err
    same_as_reference(out, reference)
    assert (out / "damaged" / "p0000-c000009.parquet").is_file()


# ---------------------------------------------------------------------- the manifest
@pytest.mark.parametrize("fault", ["truncated", "garbage", "deleted", "truncated_without_config"])
def test_damaged_manifest_is_one_line_on_read_and_rebuilt_on_resume(config, reference, tmp_path, capsys, fault):
    out = copy_of(reference, tmp_path)
    path = out / "manifest.json"
    if fault.startswith("truncated"):
        damage(path, np.random.default_rng(7), "truncate")
    elif fault == "garbage":
        path.write_text('{"format": "landscape-sweep/1", "chunks": 3}')
    else:
        path.unlink()
    if fault.endswith("without_config"):
        (out / "config.toml").unlink()  # the chunk files' own metadata says whose they are
    capsys.readouterr()
    assert cli_main(["report", str(out), "--no-figures"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "manifest.json" in line
    assert run(config, out) == 0  # the chunk files are checked, nothing is recomputed
    err = capsys.readouterr().err
    assert "manifest.json is" in err and "rebuilt it from config.toml and the chunk files" in err
    same_as_reference(out, reference)
    assert "recovered" in load_manifest(out)


def test_damaged_manifest_of_another_config_is_refused(config, reference, tmp_path):
    out = copy_of(reference, tmp_path)
    damage(out / "manifest.json", np.random.default_rng(8), "truncate")
    before = sorted(p.name for p in (out / "points.parquet").iterdir())
    with pytest.raises(ConfigError, match="different config"):
        run(config, out, overrides=["init.count=12"])
    assert sorted(p.name for p in (out / "points.parquet").iterdir()) == before


def test_damaged_directory_through_the_entry_point(reference, tmp_path):
    """The installed `landscape` command: one line, exit 2, no traceback."""
    out = copy_of(reference, tmp_path)
    damage(out / "points.parquet" / "p0002-c000001.parquet", np.random.default_rng(9), "flip")
    exe = Path(sys.executable).parent / "landscape"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "landscape.cli"]
    res = subprocess.run([*cmd, "report", str(out), "--no-figures"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert res.returncode == 2
    line = one_error_line(res.stderr)
    assert "p0002-c000001.parquet is damaged (checksum mismatch)" in line and FIX in line


# ---------------------------------------------------------------------- results that cannot be written
def fake_engine(monkeypatch):
    monkeypatch.setattr(executors, "_run_chunk_fn", lambda: fake_run_chunk)


def test_out_under_a_file_is_one_line(config, tmp_path, capsys, monkeypatch):
    fake_engine(monkeypatch)
    (tmp_path / "file").write_text("not a directory")
    out = tmp_path / "file" / "res"
    assert cli_main(["run", str(config), "--out", str(out), "--no-figures"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write results to {out} (") and line.endswith("choose another --out")


def _writes_are_refused(d: Path) -> bool:
    try:
        (d / ".probe").write_text("x")
    except OSError:
        return True
    (d / ".probe").unlink()
    return False


def _make_read_only(dirs: list[Path]) -> list[Path]:
    """chmod 0o555; where that is not enforced (root), the immutable attribute if the filesystem has it.

    Returns the directories made immutable (to undo); skips the test when neither refuses writes.
    """
    for d in dirs:
        d.chmod(0o555)
    if _writes_are_refused(dirs[0]):
        return []
    immutable = []
    if os.geteuid() == 0 and shutil.which("chattr"):
        for d in dirs:
            if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0:
                immutable.append(d)
    if immutable and _writes_are_refused(dirs[0]):
        return immutable
    _undo_read_only(dirs, immutable)
    pytest.skip("permissions are not enforced here (root, and no immutable attribute)")


def _undo_read_only(dirs: list[Path], immutable: list[Path]) -> None:
    for d in immutable:
        subprocess.run(["chattr", "-i", str(d)], check=True)
    for d in dirs:
        d.chmod(0o755)


@pytest.mark.parametrize("which", ["fresh", "parent", "finished"])
def test_read_only_results_directory_is_one_line(config, reference, tmp_path, capsys, monkeypatch, which):
    fake_engine(monkeypatch)
    ro = tmp_path / "ro"
    if which == "finished":
        shutil.copytree(reference[0], ro)
        out = ro
    else:
        ro.mkdir()
        out = ro if which == "fresh" else ro / "sub" / "res"
    dirs = [ro, *(d for d in ro.rglob("*") if d.is_dir())]
    immutable = _make_read_only(dirs)
    try:
        assert cli_main(["run", str(config), "--out", str(out), "--no-figures", "--chunk-size", "4"]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: cannot write results to {out} (") and line.endswith("choose another --out")
        if which == "finished":  # reading needs no writing; figures do, and say so in one line
            assert cli_main(["report", str(out), "--no-figures"]) == 0
            capsys.readouterr()
            assert cli_main(["report", str(out)]) == 2
            line = one_error_line(capsys.readouterr().err)
            assert "figures" in line and "choose another path" in line
    finally:
        _undo_read_only(dirs, immutable)
    if which == "finished":
        same_as_reference(ro, reference)  # nothing lost


def test_write_failing_mid_run_is_one_line_and_resumable(config, reference, tmp_path, capsys, monkeypatch):
    """The disk turns read-only (or full) after a few chunks: one line, exit 2; later the run resumes."""
    import landscape.store.storage as storage

    fake_engine(monkeypatch)
    real = storage.atomic_write
    n = {"writes": 0}

    def failing(path, data):
        n["writes"] += 1
        if n["writes"] > 9:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real(path, data)

    monkeypatch.setattr(storage, "atomic_write", failing)
    out = tmp_path / "res"
    assert cli_main(["run", str(config), "--out", str(out), "--no-figures", "--chunk-size", "4"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot write results to {out} (Read-only file system" in line
    monkeypatch.setattr(storage, "atomic_write", real)
    assert 0 < len(load_points(out)) < 40
    assert run(config, out) == 0
    same_as_reference(out, reference)


# ---------------------------------------------------------------------- all diverged
def all_nan_chunk(cfg, start, count, **kw):
    res = fake_run_chunk(cfg, start, count)
    rows = res.rows.copy()
    rows["loss"] = rows["grad_norm"] = np.nan
    rows["kind"], rows["flow_status"], rows["certified"], rows["is_global"] = "diverged", "diverged", False, False
    rows["label"] = None
    arrays = {k: (np.full(np.shape(v), np.nan) if k != "id" else v) for k, v in res.arrays.items()}
    return ChunkResult(rows=rows, arrays=arrays, timings=res.timings)


def test_all_diverged_run_completes_with_summary(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "one.toml"
    cfg.write_text(CONFIG.split("[sweep]")[0].replace("count = 10", "count = 6"))
    monkeypatch.setattr(executors, "_run_chunk_fn", lambda: all_nan_chunk)
    out = tmp_path / "nan"
    assert cli_main(["run", str(cfg), "--out", str(out), "--chunk-size", "4"]) == 0  # with figures
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["diverged"] == 6 and summary["n_points"] == 6
    assert "Traceback" not in capsys.readouterr().err
    assert load_manifest(out)["status"] == "complete"


def test_figure_failure_keeps_summary(config, tmp_path, capsys, monkeypatch):
    import landscape.report.figures as figures

    def broken(*a, **k):
        raise RuntimeError("no figure today")

    import landscape.report.sweep_report as sweep_report

    monkeypatch.setattr(figures, "write_figures", broken)
    monkeypatch.setattr(sweep_report, "write_sweep_figures", broken)
    out = tmp_path / "res"
    assert run_sweep(config, out_dir=out, run_chunk=fake_run_chunk, chunk_size=4, progress=False,
                     on_complete=finalize, figures=True) == 0
    assert (out / "summary.json").is_file()
    err = capsys.readouterr().err
    assert "warning: figures of p0000 not drawn (RuntimeError: no figure today); summary.json is written" in err
