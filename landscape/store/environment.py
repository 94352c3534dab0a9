"""The environment of a run (device, package versions), recorded in the manifest of every run for reproducibility."""

from __future__ import annotations

import importlib.metadata
import platform

__all__ = ["environment", "PACKAGES"]

PACKAGES = ("landscape", "jax", "jaxlib", "diffrax", "equinox", "optax", "numpy", "scipy", "pandas")


def environment() -> dict:
    """Device and package versions, for reproducibility records."""
    import jax

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    dev = jax.devices()[0]
    return {
        "device": {
            "platform": dev.platform,
            "kind": getattr(dev, "device_kind", str(dev)),
            "count": jax.device_count(),
        },
        "versions": versions,
    }
