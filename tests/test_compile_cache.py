"""The persistent compilation cache: entries are written on the first run and read, not compiled, on the second."""

import os
import subprocess
import sys
import textwrap

import pytest

from landscape.store.compile_cache import default_cache_dir

CHILD = textwrap.dedent("""
    import sys, time
    import jax, jax.numpy as jnp
    import landscape as ls
    print(ls.enable_compile_cache(sys.argv[1]))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # the toy program compiles in ms

    @jax.jit
    def f(x):
        return jnp.linalg.eigh(x @ x.T + jnp.eye(x.shape[0]))[0].sum()

    print(float(f(jnp.ones((7, 7)))))
""")


# a packed gradient flow (diffrax solve in segments) on a tiny smooth problem: its programs must be cacheable
FLOW_CHILD = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp
    import landscape as ls
    from landscape.flow.packing import run_flows_packed
    traced = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _, **kw: traced.append(kw.get("fun_name")) if event.endswith("jaxpr_trace_duration") else None)
    print(ls.enable_compile_cache(sys.argv[1]))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=2, width=1, activation=ls.Tanh()),
                                ls.TwoLayer(width=1, activation=ls.Tanh()),
                                ls.SampleLoss.gaussian(n=8, d=2, key=jax.random.key(0)))
    theta0 = {"w": jnp.array([[[0.3, 0.1]], [[-0.2, 0.4]]]), "a": jnp.full((2, 1), 0.5)}
    flow = ls.GradientFlow(t_max=50.0, grad_tol=1e-8, segment_steps=8, n_snapshots=4)
    traj, stats = run_flows_packed(problem, flow, theta0, min_bucket=2)
    print(stats.segments, *[float(x) for x in traj.loss_final])
    print(",".join(sorted({name for name in traced if name in ("_start", "_advance")})) or "none")
""")


def _run(cache, env=None, child=CHILD):
    return subprocess.run([sys.executable, "-c", child, str(cache)], capture_output=True, text=True, check=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}, timeout=120).stdout.split()


def test_second_process_reads_the_cache(tmp_path):
    cache = tmp_path / "jax-cache"
    first = _run(cache)
    entries = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert first[0] == str(cache) and entries, "the first run writes cache entries"
    second = _run(cache)
    assert second == first
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == entries, "nothing new compiled"


def test_second_process_compiles_and_traces_no_flow_program(tmp_path):
    # diffrax's input checks (equinox.error_if) compile to host callbacks, which JAX never caches: the flow solve
    # is traced without them (landscape.flow.gradient_flow), so its programs are written and read like any other;
    # the traced programs themselves are kept too (landscape.flow.programs), so the second process traces none
    cache = tmp_path / "jax-cache"
    first = _run(cache, child=FLOW_CHILD)
    assert first[-1] == "_advance,_start", "the first process traces the flow"
    assert len(list((cache / "programs").rglob("*.program"))) >= 2
    entries = sorted(p.name for p in cache.rglob("*-cache"))
    written = {name.rsplit("-", 2)[0] for name in entries}
    assert {"jit_kept_start", "jit_kept_advance"} <= written, f"flow programs not cached: {sorted(written)}"
    assert int(first[1]) > 1, "the flow ran in several segments"
    second = _run(cache, child=FLOW_CHILD)
    assert second[-1] == "none", "the second process reads the traced flow programs"
    assert second[:-1] == first[:-1], "the same flows, bit for bit"
    assert sorted(p.name for p in cache.rglob("*-cache")) == entries, "the second process compiled nothing new"


@pytest.mark.parametrize("value", ["off", "0", "false", "none"])
def test_switched_off_by_environment(monkeypatch, value):
    monkeypatch.setenv("LANDSCAPE_COMPILE_CACHE", value)
    assert default_cache_dir() is None


def test_default_location(monkeypatch, tmp_path):
    monkeypatch.delenv("LANDSCAPE_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "landscape" / "jax"


def test_unwritable_directory_is_a_warning(tmp_path, capsys):
    from landscape.store.compile_cache import enable_compile_cache

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert enable_compile_cache(blocker / "cache") is None
    assert "compiling without it" in capsys.readouterr().err
