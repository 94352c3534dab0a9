"""Test setup: float64 everywhere (importing landscape enables jax_enable_x64), CPU only."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# in-process CLI calls must not write the user's compilation cache; tests/test_compile_cache.py enables one
os.environ.setdefault("LANDSCAPE_COMPILE_CACHE", "off")

import landscape  # noqa: E402,F401
