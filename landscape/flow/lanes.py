"""Lanes over devices: a function written for one item, mapped over a batch split across all local devices.

    lanes_map(f, batch)  ==  jax.vmap(f)(batch)

With one local device this *is* ``jax.vmap``. With D > 1 local devices (several GPUs, or the cores of a CPU
exposed as devices by :func:`use_cpu_cores`) and a batch size divisible by D, it is ``jax.shard_map`` of
``vmap(f)`` over a 1-D mesh ``"lanes"``: each device runs its n / D lanes with its own ``while_loop``s, no
communication and no lockstep across devices (a device whose lanes finish early is free). Other sizes fall back
to ``vmap``. Every lane computes what it computes alone, so results agree with one device to rounding (XLA may
vectorise a batch of n / D differently from one of n: 2.4e-15 after 2000 GD steps at d = 6).

LAPACK stays on one device. jaxlib's batched LAPACK kernels (``eigh``, ``svd``, ``qr``, ...) wait, from inside
XLA's CPU thread pool, for tasks they queue on that same pool; with one program per CPU device holding every pool
thread nothing runs those tasks and the process hangs (jax 0.10.2: the polishing ``eigh`` on 2 devices of 2
cores). So on CPU devices ``lanes_map`` falls back to ``vmap`` for a function that calls LAPACK
(:func:`calls_lapack`), and an array split over devices must be brought back to one (:func:`unshard`) before
LAPACK sees it, since XLA would partition the call the same way. Flows and losses use no LAPACK and run split
(:mod:`landscape.flow.packing` unshards the trajectories it returns), and so do certification's measurements (the
start gradient norm and the accurate loss, :func:`landscape.certify`, which unshards its result); polishing and
the Hessian spectrum call ``eigh`` and run on one device.

Why CPU cores as devices: XLA:CPU spreads each operation of a program over its threads, which pays little for the
small fused loops of a vmapped flow (the GD step of ``experiments/bench_peer.py``, d = 6 and 1024 lanes: 2.83 ms
on one core, 2.12 ms on two); two devices of one core each run 512 lanes apiece, 1.37 ms per step. JAX fixes the
number of CPU devices when its backend starts (the ``jax_num_cpu_devices`` setting), so :func:`use_cpu_cores`
must run before the first JAX computation; ``landscape run`` and ``landscape figure`` call it (off with
``LANDSCAPE_CPU_DEVICES=1``). On a GPU machine the accelerators are the local devices and this setting is inert.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from landscape.flow.lanes import lanes_map
    >>> lanes_map(lambda x: jnp.sum(x**2), jnp.ones((4, 3))).tolist()
    [3.0, 3.0, 3.0, 3.0]
"""

from __future__ import annotations

import os
import re

import jax
import jax.extend
import numpy as np
from jax._src.lax import linalg as _linalg  # the primitive names only (calls_lapack)
from jax.sharding import Mesh, PartitionSpec

__all__ = ["lanes_map", "lane_devices", "use_cpu_cores", "available_cores", "calls_lapack", "unshard"]


def lane_devices() -> int:
    """Number of local devices a batch of lanes is spread over (1: plain vmap)."""
    return jax.local_device_count()


def lanes_map(f, batch):
    """``jax.vmap(f)(batch)``, the leading axis of ``batch`` split across the local devices (module docstring).

    Args:
        f: a function of ONE item (a pytree without the leading axis); pure. Close over shared arguments.
        batch: a pytree whose leaves share a leading axis n.

    Returns:
        ``vmap(f)(batch)``: a pytree whose leaves have the leading axis n.
    """
    devices = jax.local_devices()
    n = jax.tree.leaves(batch)[0].shape[0]
    if len(devices) == 1 or n % len(devices) or (devices[0].platform == "cpu" and calls_lapack(f, batch)):
        return jax.vmap(f)(batch)
    mesh = Mesh(np.asarray(devices), ("lanes",))
    lanes = PartitionSpec("lanes")
    return jax.shard_map(jax.vmap(f), mesh=mesh, in_specs=lanes, out_specs=lanes, check_vma=False)(batch)


def unshard(tree):
    """``tree`` with every leaf split over several devices brought back to one (uncommitted, the default device).

    For results of :func:`lanes_map` that will meet LAPACK (module docstring). A copy through host memory: on CPU
    devices a memcpy, done once per batch.
    """
    if jax.local_device_count() == 1:
        return tree

    def one(x):
        if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
            return jax.numpy.asarray(np.asarray(x))
        return x

    return jax.tree.map(one, tree)


_LAPACK = frozenset(name[:-2] for name in dir(_linalg) if name.endswith("_p"))  # eigh, svd, qr, lu, cholesky, ...


def calls_lapack(f, batch) -> bool:
    """Whether ``f`` applied to one item of ``batch`` uses a linear-algebra primitive (LAPACK on CPU).

    Traces ``f`` once more (``jax.make_jaxpr``, shapes only) and walks its jaxpr and every sub-jaxpr (loops,
    conditionals, custom derivatives).
    """
    item = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), batch)
    jaxprs, seen = [jax.make_jaxpr(f)(item).jaxpr], set()
    while jaxprs:
        jaxpr = jaxprs.pop()
        if id(jaxpr) in seen:
            continue
        seen.add(id(jaxpr))
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in _LAPACK:
                return True
            jaxprs.extend(sub.jaxpr if hasattr(sub, "jaxpr") else sub for sub in _subjaxprs(eqn.params))
    return False


def _subjaxprs(params):
    for value in params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, (jax.extend.core.Jaxpr, jax.extend.core.ClosedJaxpr)):
                yield v


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (containers, CI runners)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def use_cpu_cores(n: int | None = None) -> int:
    """Expose ``n`` CPU cores (default :func:`available_cores`, or ``$LANDSCAPE_CPU_DEVICES``) as JAX CPU devices.

    Must run before JAX's backend starts (before the first array is made); once it has started this changes
    nothing. A device count already asked for (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) is kept.
    Returns the number of CPU devices in effect (or asked for, when the backend has yet to start). Raises
    ``ValueError`` when ``$LANDSCAPE_CPU_DEVICES`` is not a positive integer.
    """
    from jax._src import xla_bridge  # no public test for "backend started"; the setting itself is public

    env = os.environ.get("LANDSCAPE_CPU_DEVICES", "").strip()
    if env and not (env.isdigit() and int(env) >= 1):
        raise ValueError(f"LANDSCAPE_CPU_DEVICES = {env!r} must be a positive integer (1: one CPU device, no "
                         "split); unset it to use every core")
    if xla_bridge.backends_are_initialized():
        return jax.local_device_count("cpu")
    forced = re.search(r"--xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", ""))
    if forced:
        return int(forced.group(1))
    if n is None:
        n = int(env) if env else available_cores()
    jax.config.update("jax_num_cpu_devices", max(1, int(n)))
    return max(1, int(n))
