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


def _run(cache, env=None, child=CHILD):  # the flow programs: tests/test_programs.py, explore end to end
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
