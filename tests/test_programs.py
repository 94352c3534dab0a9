"""Programs kept across processes (landscape.flow.programs): the key pins the program down, a kept program gives
the numbers of ``filter_jit`` bit for bit, and whatever cannot be described or exported is traced as before."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape.analysis.explore import Certified
from landscape.flow import programs
from landscape.flow.programs import Undescribable, describe, persistent_jit


@dataclasses.dataclass(frozen=True)
class Foreign:  # defined outside the package: its source is not in the key
    x: float = 1.0


def test_arrays_are_described_by_shape_and_dtype_statics_by_exact_value():
    a, b = jnp.zeros((2, 3)), jnp.ones((2, 3))
    assert describe({"w": a}) == describe({"w": b})
    assert describe({"w": a}) != describe({"w": jnp.zeros((3, 2))}) != describe({"w": a.astype(jnp.float32)})
    assert describe(1.0) != describe(1.0 + 2**-52) and describe(1) != describe(1.0) != describe(True)
    assert describe({"b": 1, "a": 2}) == describe({"a": 2, "b": 1})
    assert describe(ls.GradientFlow(segment_steps=32)) != describe(ls.GradientFlow(segment_steps=64))
    assert describe(ls.Polish(tol=1e-10)) == describe(ls.Polish(tol=1e-11)), "hyperparameters are traced"
    assert describe(ls.Polish(max_iter=30)) != describe(ls.Polish(max_iter=31))
    assert describe(ls.ReLU()) != describe(ls.Tanh())


def test_functions_are_described_by_code_and_closure():
    def make(c, k=1):
        f = (lambda x: x * c) if k == 1 else (lambda x: x * c * c)
        f.__module__ = "landscape.flow"  # as if the package had made it
        return f

    assert describe(make(2.0)) == describe(make(2.0)) != describe(make(3.0))
    assert describe(make(2.0)) != describe(make(2.0, k=2)), "same name, other code"
    assert describe(programs.describe) == describe(programs.describe)


def _foreign_function(x):  # a test module's function: not the package's source
    return x


@pytest.mark.parametrize("value", [Foreign(), object(), _foreign_function, {"f": Foreign}, np.random.default_rng()])
def test_what_the_key_cannot_pin_down_is_undescribable(value):
    with pytest.raises(Undescribable):
        describe(value)


def test_tracers_are_undescribable():
    seen = []

    def f(x):
        try:
            describe(x)
        except Undescribable:
            seen.append(True)
        return x

    jax.jit(f)(1.0)
    assert seen == [True]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(programs, "programs_dir", lambda: tmp_path)
    return tmp_path


def _problem():
    return ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))


def _thetas(n=4):
    w = 0.5 * jax.random.normal(jax.random.key(1), (n, 2, 3))
    return {"w": w.at[0, 1].set(w[0, 0]).at[1, 1].set(0.0), "a": jnp.ones((n, 2))}  # coincident and zero neurons


def _body(traces):
    def certify_like(problem, thetas, settings, count):
        traces.append(1)
        loss, g = jax.vmap(jax.value_and_grad(problem.loss))(thetas)
        gn = jnp.sqrt(sum(jnp.sum(x**2, axis=tuple(range(1, x.ndim))) for x in jax.tree.leaves(g)))
        n = loss.shape[0]
        return Certified(theta=thetas, loss=loss, grad_norm=gn, certified=gn <= settings.tol,
                         finite=jnp.isfinite(loss), n_iter=jnp.full(n, count, jnp.int32), start_loss=loss,
                         start_grad_norm=gn, stop=jnp.zeros(n, jnp.int32)), ("static", count)

    return certify_like


def _same(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        if eqx.is_array(x):
            assert np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) and x.dtype == y.dtype
        else:
            assert x == y


def test_a_kept_program_is_loaded_not_traced_and_gives_filter_jit_bit_for_bit(cache):
    traces = []
    fun = _body(traces)
    args = (_problem(), _thetas(), ls.Polish(tol=1e-6), 7)
    first = persistent_jit(fun)(*args)
    assert len(traces) == 1 and len(list(cache.rglob("*.program"))) == 1
    again = persistent_jit(fun)  # a fresh wrapper: as in a new process, nothing in memory
    second = again(*args)
    assert len(traces) == 1, "read from disk, not traced"
    again(*args)
    assert len(traces) == 1 and len(list(cache.rglob("*.program"))) == 1, "in memory after the first call"
    reference = eqx.filter_jit(fun)(*args)
    _same(first, reference)
    _same(second, reference)
    assert second[1] == ("static", 7) and isinstance(second[0], Certified)


def test_a_new_static_value_or_shape_is_a_new_program(cache):
    traces = []
    fun = persistent_jit(_body(traces))
    fun(_problem(), _thetas(), ls.Polish(tol=1e-6), 7)
    fun(_problem(), _thetas(), ls.Polish(tol=1e-6), 8)
    fun(_problem(), _thetas(), ls.Polish(tol=1e-6, max_iter=3), 7)
    out = fun(_problem(), _thetas(6), ls.Polish(tol=1e-6), 7)
    assert len(traces) == 4 and len(list(cache.rglob("*.program"))) == 4
    fun(_problem(), _thetas(), ls.Polish(tol=1e-7), 7)
    assert len(traces) == 4, "a traced hyperparameter: the same program"
    assert out[0].loss.shape == (6,) and out[1] == ("static", 7)


def test_a_damaged_file_is_traced_again_and_replaced(cache):
    traces = []
    args = (_problem(), _thetas(), ls.Polish(tol=1e-6), 7)
    reference = persistent_jit(_body(traces))(*args)
    (path,) = cache.rglob("*.program")
    path.write_bytes(b"not a program")
    _same(persistent_jit(_body(traces))(*args), reference)
    assert len(traces) == 2 and path.read_bytes() != b"not a program"
    _same(persistent_jit(_body(traces))(*args), reference)
    assert len(traces) == 2, "the replacement is read"


def test_undescribable_arguments_and_a_switched_off_cache_take_the_filter_jit_path(cache, monkeypatch):
    traces = []

    def f(x, foreign):
        traces.append(1)
        return x * foreign.x

    assert float(persistent_jit(f)(jnp.float64(2.0), Foreign(3.0))) == 6.0
    assert not list(cache.rglob("*.program"))
    monkeypatch.setattr(programs, "programs_dir", lambda: None)
    assert float(persistent_jit(f)(jnp.float64(2.0), Foreign(3.0))) == 6.0
    assert not list(cache.rglob("*.program"))


def test_a_program_jax_cannot_export_is_traced_as_usual(cache):
    def f(x):
        jax.debug.callback(lambda v: None, x)  # host callbacks do not serialize
        return 2 * x

    assert float(persistent_jit(f)(jnp.float64(2.0))) == 4.0
    assert not list(cache.rglob("*.program"))


def test_errors_of_the_function_itself_are_raised_unchanged(cache):
    def f(x):
        return x @ x  # a vector times itself: fine; a scalar: JAX's ValueError

    with pytest.raises(ValueError, match="matmul input operand 0"):
        persistent_jit(f)(jnp.float64(2.0))


SPREAD_CHILD = """
import sys, jax
jax.config.update("jax_num_cpu_devices", 2)
import jax.numpy as jnp, numpy as np, equinox as eqx, landscape as ls
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from landscape.flow.programs import persistent_jit
ls.enable_compile_cache(sys.argv[1])
traces = []
def f(problem, x):
    traces.append(1)
    return jax.vmap(problem.loss)(x)
problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
x = {"w": jax.random.normal(jax.random.key(0), (8, 2, 3)), "a": jnp.ones((8, 2))}
spread = jax.device_put(x, NamedSharding(Mesh(np.asarray(jax.devices()), ("b",)), PartitionSpec("b")))
out, one = persistent_jit(f)(problem, spread), persistent_jit(f)(problem, x)
kept = len(traces)
ref = eqx.filter_jit(f)(problem, x)
print(kept, len(out.sharding.device_set), np.array_equal(out, ref), np.array_equal(one, ref))
"""


def test_a_batch_spread_over_devices_is_a_program_partitioned_for_them(tmp_path):
    # two CPU devices in a child process: a program traced for a spread batch keeps its partitioning, and the
    # same batch on one device is another program; the second process traces neither
    import os
    import subprocess
    import sys

    run = lambda: subprocess.run([sys.executable, "-c", SPREAD_CHILD, str(tmp_path)], capture_output=True,  # noqa: E731
                                 text=True, check=True, timeout=120,
                                 env={**os.environ, "JAX_PLATFORMS": "cpu"}).stdout.split()
    assert run() == ["2", "2", "True", "True"]
    assert run() == ["0", "2", "True", "True"]


def test_programs_of_old_builds_are_pruned(cache):
    import os

    for i in range(programs.KEEP_BUILDS + 2):  # folders of earlier builds, the oldest first
        old = cache / f"old{i}"
        old.mkdir()
        (old / "x.program").write_bytes(b"")
        os.utime(old, (1000 + i, 1000 + i))
    persistent_jit(_body([]))(_problem(), _thetas(), ls.Polish(), 7)
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == programs.KEEP_BUILDS and programs._build() in kept
    newest_old = [f"old{i}" for i in range(3, programs.KEEP_BUILDS + 2)]  # this build, then the most recent ones
    assert sorted(k for k in kept if k.startswith("old")) == newest_old


EXPLORE_CHILD = """
import hashlib, sys, jax, numpy as np, landscape as ls
if sys.argv[1] != "off":
    ls.enable_compile_cache(sys.argv[1])
traced = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, _, **kw: traced.append(kw.get("fun_name")) if event.endswith("jaxpr_trace_duration") else None)
problem = ls.TeacherStudent(ls.Teacher.gaussian(d=3, width=2, key=jax.random.key(1)), ls.TwoLayer(width=2))
res = ls.explore(problem, ls.GradientFlow(t_max=100.0, segment_steps=16), key=jax.random.key(0), n=8)
h = hashlib.sha256()
for leaf in jax.tree.leaves((res.trajectory, res.points, res.analysis.arrays, res.analysis.columns)):
    h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
big = {"_start", "_advance", "_certify", "_vmapped", "_initial"}
print(h.hexdigest(), ",".join(sorted(big & set(traced))) or "none", list(res.table()["kind"]).count("minimum"))
"""


def test_explore_gives_the_same_bits_without_cache_with_it_and_from_kept_programs(tmp_path):
    # the whole pipeline (initialisation, packed flow, certify, analyzers) in child processes: without any cache,
    # then twice with one; the last traces none of its big programs and compiles nothing (XLA's entries come from
    # JAX's cache; diffrax's host-callback input checks, which JAX never caches, are kept out of the flow solve by
    # landscape.flow.gradient_flow), and every array is bitwise the same
    import os
    import subprocess
    import sys

    def run(cache):
        return subprocess.run([sys.executable, "-c", EXPLORE_CHILD, cache], capture_output=True, text=True,
                              check=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"}).stdout.split()

    plain, first = run("off"), run(str(tmp_path))
    entries = sorted(p.name for p in tmp_path.rglob("*-cache"))
    second = run(str(tmp_path))
    assert plain[1] == first[1] == "_advance,_certify,_initial,_start,_vmapped"
    assert second[1] == "none", "the second process reads the traced programs"
    assert sorted(p.name for p in tmp_path.rglob("*-cache")) == entries, "and compiles nothing new"
    assert {"jit_kept_start", "jit_kept_advance", "jit_kept_certify"} <= {e.rsplit("-", 2)[0] for e in entries}
    assert plain[0] == first[0] == second[0] and plain[2] == second[2]
