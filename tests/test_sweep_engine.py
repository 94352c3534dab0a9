"""Sweeps with the real engine: determinism, one compilation per shape group, Ray == local, sharding over devices.

All tests share one tiny config (two grid points of the same shapes, padded chunks), so the engine compiles once in
this process; the Ray workers and the two-device subprocess compile for themselves.
"""

import inspect
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from jax import monitoring

import landscape  # noqa: F401  (x64)
from landscape.store import load_arrays, load_manifest, load_points
from landscape.sweep.execute import run_chunk
from landscape.sweep.runner import run_sweep

CONFIG = """
[problem]
input_dim = 3
activation = "relu"
[teacher]
width = 2
[student]
width = 2
[init]
count = 5
seed = 11
[flow]
method = "gd"
lr = 0.05
steps = 200
n_snapshots = 6
[polish]
enabled = false
[sweep]
grid = { "init.scale" = [0.5, 1.0] }
"""
CHUNK = 3  # 5 = 3 + 2: the short chunk is padded to 3, so every chunk has one shape

_COMPILES = []
monitoring.register_event_duration_secs_listener(
    lambda name, *a, **k: _COMPILES.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "engine.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def local_run(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "local"
    assert run_sweep(config, out_dir=out, chunk_size=CHUNK, figures=False, progress=False) == 0
    return out


def test_rows_match_the_engine_and_are_deterministic(config, local_run, tmp_path):
    table = load_points(local_run)
    assert len(table) == 10 and table.groupby("grid_point")["id"].apply(list).tolist() == [[0, 1, 2, 3, 4]] * 2
    assert not table.duplicated(["grid_point", "id"]).any()
    man = load_manifest(local_run)
    assert [c["count"] for c in man["chunks"]] == [3, 2, 3, 2]
    # rows equal a direct call of the engine on the point's config (the sweep only adds grid columns)
    from landscape.config import read_raw_config
    from landscape.grid import expand_sweep

    p1 = expand_sweep(read_raw_config(config))[1]
    direct = run_chunk(p1.config, 3, CHUNK)  # ids 3, 4 and the padding id 5, in the compiled shape
    got = table[table["grid_point"] == 1].reset_index(drop=True)
    assert (got["init.scale"] == 1.0).all() and (got["init.seed"] == p1.seed).all()
    pd.testing.assert_frame_equal(got.iloc[3:5][direct.rows.columns].reset_index(drop=True),
                                  direct.rows.iloc[:2], check_dtype=False)
    np.testing.assert_array_equal(load_arrays(local_run, 1)["eigenvalues"][3:5], direct.arrays["eigenvalues"][:2])
    # same config again: identical table, and no new compilation (same shapes)
    n_before = len(_COMPILES)
    out = tmp_path / "again"
    assert run_sweep(config, out_dir=out, chunk_size=CHUNK, figures=False, progress=False) == 0
    assert len(_COMPILES) == n_before, "a chunk of an already-seen shape recompiled"
    pd.testing.assert_frame_equal(load_points(out), table)


def test_other_values_same_shapes_reuse_the_compilation(config, local_run, tmp_path):
    n_before = len(_COMPILES)
    out = tmp_path / "scales"
    assert run_sweep(config, out_dir=out, chunk_size=CHUNK, overrides=['sweep.grid={"init.scale"=[0.25, 2.0]}'],
                     figures=False, progress=False) == 0
    assert len(_COMPILES) == n_before
    assert sorted(load_points(out)["init.scale"].unique()) == [0.25, 2.0]


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # Ray forks+execs its helper processes
def test_ray_executor_gives_the_local_table(config, local_run, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"JAX_PLATFORMS": "cpu"}})
    try:
        out = tmp_path / "ray"
        assert run_sweep(config, out_dir=out, chunk_size=CHUNK, executor="ray", figures=False, progress=False) == 0
    finally:
        ray.shutdown()
    man = load_manifest(out)
    assert man["runs"][0]["executor"] == "ray" and man["runs"][0]["cpus"] == 2
    pd.testing.assert_frame_equal(load_points(out), load_points(local_run))
    for p in (0, 1):
        a, b = load_arrays(out, p), load_arrays(local_run, p)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


SHARDED = """
import sys
import jax
import landscape.sweep.executors as ex
assert jax.local_device_count() == 2, jax.devices()
assert ex.batch_sharding() is None  # CPU devices: the flows' lanes split over them, polishing stays on one
from landscape.cli import main
sys.exit(main(["run", {config!r}, "--out", {out!r}, "--chunk-size", "3"]))
"""


@pytest.mark.skipif("sharding" not in inspect.signature(run_chunk).parameters,
                    reason="landscape.sweep.execute.run_chunk has no sharding= argument yet")
def test_two_host_devices_split_the_lanes_and_give_the_same_table(config, local_run, tmp_path):
    out = tmp_path / "sharded"
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED.format(config=str(config), out=str(out)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    man = load_manifest(out)
    assert man["runs"][0]["devices"] == 2 and man["runs"][0]["sharded"] is False
    assert man["chunk_size"] == 4  # rounded up to a multiple of the device count
    a, b = load_points(out), load_points(local_run)
    pd.testing.assert_frame_equal(a.drop(columns=a.select_dtypes("number").columns),
                                  b.drop(columns=b.select_dtypes("number").columns))
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-10, atol=1e-14)
