"""JAX's persistent compilation cache in a user cache directory: a second run of the same shapes compiles nothing.

Every jitted stage of a run (initialisation, the vmapped flow, polishing, Hessians, analyzers) is compiled by XLA
once per shape; on a 2-core CPU that costs about a minute for the quickstart against a few seconds of work. With
the cache enabled, XLA's executables are written to disk keyed by the program text, the compiler flags and the
jax/jaxlib versions, and a later process with the same shapes loads them instead of compiling. Hyperparameters
are traced (module docstrings of :mod:`landscape.flow`), so new values reuse the entries too.

JAX never writes a program that contains host callbacks (``jax.debug.print``, ``pure_callback``, equinox's
runtime ``error_if`` checks). diffrax's input checks were such callbacks, so the packed flow programs were
recompiled by every process; the flows now trace their solves without them
(:mod:`landscape.flow.gradient_flow`), and ``tests/test_programs.py`` checks that a second process compiles
no flow program. Measured on the quickstart (2 loaded CPU cores): a run writes 6 entries for its big programs (init,
flow start and segment, certify, Hessians, analyzers), and about 30 for its small eager operations, and a second run
writes none, 16 s of wall time against 38 s without the cache; what remained was start-up, tracing (JAX traces a
program to find its cache key) and the work itself. The traced programs are now kept too, in ``programs/`` inside
the same directory (:mod:`landscape.flow.programs`), switched on and off with it: the quickstart's second run
takes 8.3 s.

Where: ``$LANDSCAPE_COMPILE_CACHE`` if set (``off``, ``0``, ``false`` or ``none`` disable it), else
``$XDG_CACHE_HOME/landscape/jax``, else ``~/.cache/landscape/jax``. ``landscape run`` and ``landscape figure``
enable it unless given ``--no-compile-cache``; in a notebook call :func:`enable_compile_cache` before the first
compilation. The cache is trusted code: keep it in a directory only you can write (the JAX documentation's warning).
A directory that cannot be created is reported once and the run goes on without a cache.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax

__all__ = ["default_cache_dir", "enable_compile_cache", "compile_cache_dir"]

_OFF = {"off", "0", "false", "no", "none", ""}

MIN_COMPILE_SECONDS = 0.0
"""Programs that compile faster than this are not written. 0: every program is, the ~30 small eager operations
of a run too (each ~20 ms to compile on a 2-core CPU): bench_peer's warm run 11.4 s -> 10.9 s against 0.2 here."""


def default_cache_dir() -> Path | None:
    """The cache directory the environment asks for (module docstring), or None when it is switched off."""
    env = os.environ.get("LANDSCAPE_COMPILE_CACHE")
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "landscape" / "jax"


def enable_compile_cache(path: str | Path | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`default_cache_dir`).

    Args:
        path: the cache directory; created if missing. None: the default, which may be switched off by
            ``LANDSCAPE_COMPILE_CACHE=off``.

    Returns:
        The directory in use, or None when the cache is off or the directory cannot be created.

    Example:
        >>> import landscape as ls
        >>> ls.enable_compile_cache("/tmp/landscape-jax-cache")  # doctest: +SKIP
        PosixPath('/tmp/landscape-jax-cache')
    """
    target = default_cache_dir() if path is None else Path(path).expanduser()
    if target is None:
        return None
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"warning: compilation cache {target} unavailable ({e.strerror}); compiling without it",
              file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(target))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return target


def compile_cache_dir() -> Path | None:
    """The compilation cache directory JAX is using now, or None."""
    value = jax.config.jax_compilation_cache_dir
    return Path(value) if value else None
