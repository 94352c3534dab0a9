"""Test setup: float64 everywhere (importing landscape enables jax_enable_x64), CPU only."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import landscape  # noqa: E402,F401
