"""Test setup: float64 everywhere (importing landscape enables jax_enable_x64), CPU only."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# in-process CLI calls must not write the user's compilation cache; tests/test_compile_cache.py enables one
os.environ.setdefault("LANDSCAPE_COMPILE_CACHE", "off")
# one CPU device in this process whichever test runs first (in-process CLI calls would otherwise split the lanes
# over the cores); tests/test_lanes.py and the sweep engine's two-device test run their own processes
os.environ.setdefault("LANDSCAPE_CPU_DEVICES", "1")

import landscape  # noqa: E402,F401
