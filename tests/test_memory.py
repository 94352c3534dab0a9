"""Memory: blocked Hessians equal jax.hessian, and the chunk estimate bounds the measured peak of a smooth run."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landscape.analysis.hessian import flat_loss, hessian_matrix
from landscape.config import build_problem, config_from_dict
from landscape.flow.init import init_params
from landscape.flow.polish import dense_hessian, hessian_block_size
from landscape.sweep.runner import CHUNK_OVERHEAD, bytes_per_trajectory


def _problem(activation, **problem):
    raw = {"problem": {"input_dim": 3, "activation": activation, **problem}, "teacher": {"width": 2},
           "student": {"width": 3}}
    return build_problem(config_from_dict(raw))


@pytest.mark.parametrize("activation, problem, blocks", [
    ("relu", {}, (5,)),  # closed form (compiles slowly): one uneven blocking; automatic is jax.hessian itself
    ("softplus", {"quadrature_order": 24}, (1, 5, None)),  # one column at a time, uneven (padded), automatic
    ("tanh", {"loss": "sample", "n_samples": 64}, (1, 5, None)),
])
def test_blocked_hessian_equals_jax_hessian(activation, problem, blocks):
    p = _problem(activation, **problem)
    theta = init_params(jax.random.PRNGKey(3), p, scale=1.0)
    f, x = flat_loss(p, theta)
    ref = np.asarray(jax.jit(jax.hessian(f))(x))
    scale = np.max(np.abs(ref))
    for block in blocks:
        raw = np.asarray(jax.jit(lambda z, b=block: dense_hessian(f, z, b))(x))  # unsymmetrised, as polish uses it
        assert np.max(np.abs(raw - ref)) <= 1e-12 * scale, block
    h = np.asarray(jax.jit(lambda q, t: hessian_matrix(q, t, block_size=blocks[0]))(p, theta))
    assert np.array_equal(h, h.T)
    assert np.max(np.abs(h - 0.5 * (ref + ref.T))) <= 1e-12 * scale


def test_block_size_is_static_and_whole_for_small_problems():
    relu = _problem("relu")
    assert hessian_block_size(relu, 15) == 15  # closed form: plain jax.hessian
    big = _problem("tanh", loss="sample", n_samples=200_000)  # 4 n (m + 1) words per tangent: 25 MiB
    assert 1 <= hessian_block_size(big, 15) < 15
    thetas = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), init_params(jax.random.PRNGKey(0), relu, scale=1.0))
    h = jax.jit(jax.vmap(lambda t: hessian_matrix(relu, t, block_size=2)))(thetas)
    assert h.shape == (2, 12, 12) and bool(jnp.all(jnp.isfinite(h)))


# Peak RSS from /proc/self/status VmHWM (the high-water mark of this process's own address space). Not ru_maxrss:
# on Linux a child's ru_maxrss starts from its parent's high-water mark (copied at fork/vfork + exec), so inside a
# large pytest process it would read pytest's peak.
_CHILD = textwrap.dedent("""
    import json, sys
    def hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import landscape
    from landscape.config import build_problem, config_from_dict
    from landscape.sweep.execute import run_chunk
    cfg = config_from_dict(json.loads(sys.argv[1]))
    problem = build_problem(cfg)
    base = hwm()
    res = run_chunk(cfg, 0, cfg.init.count, problem=problem)
    print(json.dumps({"base": base, "peak": hwm(), "n": len(res.rows)}))
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc/self/status (Linux)")
def test_estimate_bounds_measured_peak_of_small_smooth_run():
    # a softplus population problem (quadrature, accurate loss, polish and Hessians on the grid), 4 initialisations;
    # the baseline is the same process after importing landscape and building the problem (what a process that only
    # imports and builds reaches): the increase is what the chunk costs, compilation included, which the runner
    # budgets as CHUNK_OVERHEAD + count * bytes_per_trajectory
    raw = {"problem": {"input_dim": 4, "activation": "softplus", "quadrature_order": 32},
           "teacher": {"kind": "gaussian", "width": 3, "seed": 1}, "student": {"width": 3},
           "init": {"count": 4, "scale": 0.01}, "flow": {"t_max": 2.0}, "polish": {"max_iter": 3}}
    cfg = config_from_dict(raw)
    per_traj = bytes_per_trajectory(cfg)
    estimate = CHUNK_OVERHEAD["cpu"] + cfg.init.count * per_traj
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(raw)], capture_output=True, text=True, env=env,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    used = got["peak"] - got["base"]
    assert got["n"] == 4
    assert 0 < used <= estimate, f"measured {used / 2**20:.0f} MiB > estimate {estimate / 2**20:.0f} MiB"
    # the per-trajectory part alone is not a token amount: quadrature grids dominate the accurate loss
    assert per_traj > 8 * 2**20


def test_explicit_chunk_size_that_cannot_fit_is_refused(tmp_path, monkeypatch, capsys):
    """--chunk-size beyond free memory: one line naming the flag and a size that fits, exit 2, nothing written."""
    from landscape import cli
    from landscape.sweep import runner

    monkeypatch.setattr(runner, "available_memory", lambda: (CHUNK_OVERHEAD["cpu"] + 50 * 2**20, "cpu"))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[problem]\ninput_dim = 3\nactivation = "softplus"\n[teacher]\nwidth = 2\n[student]\nwidth = 3\n'
                   '[init]\ncount = 64\n')
    out = tmp_path / "out"
    rc = cli.main(["run", str(cfg), "--out", str(out), "--chunk-size", "64", "--no-compile-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--chunk-size 64 needs about" in err[0], err
    assert "use --chunk-size" in err[0] and not out.exists()
