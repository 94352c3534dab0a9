"""Lanes over devices (landscape.flow.lanes): vmap on one device; on two CPU devices (a subprocess, since JAX fixes
the device count at start-up) the flows split across them, agree with one device, and LAPACK stays on one device."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from landscape.flow.lanes import calls_lapack, lane_devices, lanes_map, unshard


def test_one_device_is_vmap():
    x = jax.random.normal(jax.random.key(0), (6, 3))
    f = lambda v: jnp.sin(v) @ v  # noqa: E731
    assert lane_devices() == 1
    np.testing.assert_array_equal(np.asarray(lanes_map(f, x)), np.asarray(jax.vmap(f)(x)))
    tree = {"a": x}
    assert unshard(tree) is tree


def test_calls_lapack_finds_eigh_inside_loops_conditionals_and_derivatives():
    x = jnp.ones((5, 3))
    plain = lambda v: jnp.sum(v * v)  # noqa: E731

    def in_loop(v):
        h = jnp.outer(v, v) + jnp.eye(3)
        return jax.lax.while_loop(lambda c: c[1] < 3, lambda c: (c[0] + jnp.linalg.eigh(h)[0][0], c[1] + 1),
                                  (0.0, 0))[0]

    in_cond = lambda v: jax.lax.cond(v[0] > 0, lambda: jnp.linalg.svd(jnp.outer(v, v))[1][0], lambda: 0.0)  # noqa
    in_grad = lambda v: jax.grad(lambda u: jnp.linalg.eigvalsh(jnp.outer(u, u))[-1])(v).sum()  # noqa: E731
    assert not calls_lapack(plain, x)
    assert calls_lapack(in_loop, x) and calls_lapack(in_cond, x) and calls_lapack(in_grad, x)
    assert not calls_lapack(lambda v: jnp.linalg.norm(v), x)


def test_a_bad_device_count_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    from landscape.cli import main

    monkeypatch.setenv("LANDSCAPE_CPU_DEVICES", "two")
    config = Path(__file__).resolve().parents[1] / "configs" / "quickstart.toml"
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "LANDSCAPE_CPU_DEVICES = 'two' must be a positive integer" in err[0]
    assert not (tmp_path / "out").exists()


TWO_DEVICES = r"""
import sys, faulthandler
faulthandler.dump_traceback_later(150, exit=True)  # a hang fails the test with a traceback, not a CI timeout
import landscape as ls
n = int(sys.argv[2])
assert ls.use_cpu_cores(n) == n
ls.enable_compile_cache(sys.argv[3])  # the single-device programs (polishing) compile once for both runs
import jax, jax.numpy as jnp, numpy as np, optax
from jax.flatten_util import ravel_pytree
from landscape.flow.lanes import calls_lapack, lanes_map
from landscape.flow.packing import run_flows_packed
assert jax.local_device_count() == n

teacher = ls.Teacher.gaussian(4, 3, key=jax.random.key(1), output_weights=[1.0, -1.0, 0.6])
problem = ls.TeacherStudent(teacher, ls.TwoLayer(width=3), ls.PopulationLoss())  # the quickstart's problem
keys = jax.random.split(jax.random.key(0), 32)
theta0 = jax.vmap(lambda k: ls.GaussianInit(0.3).sample(k, problem))(keys)
flow = ls.OptaxFlow(optax.sgd, learning_rate=0.2, steps=3000, grad_tol=1e-7, segment_steps=500)

split = jax.jit(lambda th: lanes_map(problem.loss, th))(theta0)
assert len(split.sharding.device_set) == n  # the lanes ran on every device
np.testing.assert_allclose(np.asarray(split), np.asarray(jax.jit(jax.vmap(problem.loss))(theta0)), rtol=1e-13, atol=0)

traj, stats = run_flows_packed(problem, flow, theta0)
assert all(len(leaf.sharding.device_set) == 1 for leaf in jax.tree.leaves(traj))  # back on one device
# the hang this guards against: polishing's eigh on a batch split over both CPU devices
def hess_eigh(t):
    x, unravel = ravel_pytree(t)
    return jnp.linalg.eigvalsh(jax.hessian(lambda u: problem.loss(unravel(u)))(x))
assert calls_lapack(hess_eigh, traj.theta)
spectra = jax.jit(lambda th: lanes_map(hess_eigh, th))(traj.theta)
points = ls.certify(problem, traj.theta)  # its measurements (start |grad|, accurate loss) run split, then unsplit
assert all(len(leaf.sharding.device_set) == 1 for leaf in jax.tree.leaves(points))
assert np.isfinite(np.asarray(jax.jit(jax.vmap(lambda t: ls.spectrum(problem, t)))(points.theta))).all()  # eigh
assert np.isfinite(np.asarray(spectra)).all()
np.savez(sys.argv[1], flow_loss=traj.loss_final, status=traj.status, loss=points.loss,
         certified=points.certified, spectra=spectra)
"""


def test_two_cpu_devices_split_the_flows_and_agree_with_one(tmp_path):
    script = tmp_path / "two.py"
    script.write_text(TWO_DEVICES)
    results = {}
    for n in (1, 2):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "LANDSCAPE_COMPILE_CACHE": "off"}
        env.pop("XLA_FLAGS", None)
        out = tmp_path / f"r{n}.npz"
        args = [sys.executable, str(script), str(out), str(n), str(tmp_path / "cache")]
        res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
        assert res.returncode == 0, res.stderr[-3000:]
        results[n] = np.load(out)
    one, two = results[1], results[2]
    for name in ("status", "certified"):
        np.testing.assert_array_equal(one[name], two[name])
    assert one["certified"].sum() >= 16 and len(set(one["status"])) >= 1
    for name in ("flow_loss", "loss", "spectra"):  # the same up to rounding (one device or two: same to 1e-15)
        np.testing.assert_allclose(two[name], one[name], rtol=1e-8, atol=1e-12 if name == "spectra" else 1e-25)
