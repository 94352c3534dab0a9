"""Executors: where chunks run. In-process (default, multi-device sharding) or as Ray tasks on a cluster.

An executor maps tasks ``(chunk, config)`` to ``(chunk, ChunkResult)`` pairs, yielded as they finish (in any order);
the runner alone writes results, so storage has one writer whatever the executor.

- :class:`LocalExecutor` runs chunks one after the other in this process. With several GPUs it shards each
  chunk's batch axis over a 1-D mesh ``("batch",)`` with :class:`jax.sharding.NamedSharding`; with several CPU
  devices (:func:`landscape.use_cpu_cores`, which ``landscape run`` calls) the flows' lanes spread over them
  (:mod:`landscape.flow.lanes`) and polishing runs on one. The chunk size is a multiple of the device count.
- :class:`RayExecutor` submits chunks as Ray tasks (one GPU each when the cluster has GPUs, else one CPU each) to
  an existing cluster (``address``) or a local Ray instance, keeping a bounded number in flight. Ray is optional
  (``pip install 'landscape[ray]'``). Each worker process caches problems and compilations between its tasks.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator

import jax
import numpy as np

from ..config import Config, ConfigError

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "make_executor", "batch_sharding", "device_count"]


def device_count() -> int:
    """Number of local JAX devices the local executor shards over."""
    return jax.local_device_count()


def batch_sharding():
    """A NamedSharding of axis 0 over all local accelerators (1-D mesh ``("batch",)``), or None.

    None with one device, and with CPU devices: there the flows' lanes spread over the devices inside
    :func:`landscape.flow.packing.run_flows_packed` (:mod:`landscape.flow.lanes`), and polishing must stay on one
    device (jaxlib's batched LAPACK hangs when every CPU device runs it at once).
    """
    devices = jax.local_devices()
    if len(devices) < 2 or devices[0].platform == "cpu":
        return None
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))


def _run_chunk_fn():
    from .execute import run_chunk

    return run_chunk


def _accepts(fn, name: str) -> bool:
    return name in inspect.signature(fn).parameters


class Executor:
    """Runs chunks; ``run`` yields ``(chunk, ChunkResult)`` as chunks finish."""

    name = "abstract"
    n_workers = 1

    def run(self, tasks: Iterable[tuple]) -> Iterator[tuple]:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (a Ray instance this executor started)."""

    def describe(self) -> dict:
        return {"executor": self.name, "workers": self.n_workers}


class LocalExecutor(Executor):
    """In-process execution; problems are built once per grid point, one compilation per shape group."""

    name = "local"

    def __init__(self, *, run_chunk=None):
        self.sharding = batch_sharding()
        self.n_devices = device_count()
        self._problems: dict[int, object] = {}
        self._run_chunk = run_chunk
        if self.sharding is not None and not _accepts(run_chunk or _run_chunk_fn(), "sharding"):
            import warnings

            warnings.warn(f"run_chunk takes no sharding= argument; using one of {self.n_devices} devices",
                          stacklevel=2)
            self.sharding = None

    def describe(self) -> dict:
        dev = jax.local_devices()[0]
        return {"executor": self.name, "devices": self.n_devices, "platform": dev.platform,
                "sharded": self.sharding is not None}

    def run(self, tasks):
        from ..config import build_problem

        run_chunk = self._run_chunk or _run_chunk_fn()
        kwargs = {} if self.sharding is None else {"sharding": self.sharding}
        for chunk, cfg in tasks:
            if chunk.point not in self._problems:
                self._problems = {chunk.point: build_problem(cfg)}  # points run in order: keep one
            yield chunk, run_chunk(cfg, chunk.start, chunk.run_count, problem=self._problems[chunk.point], **kwargs)


_WORKER_PROBLEMS: dict = {}


def _ray_task(cfg: Config, start: int, count: int, run_chunk=None):
    """Body of a Ray task: run one chunk in a worker process (problems cached per worker)."""
    jax.config.update("jax_enable_x64", True)  # float64 in the worker, whatever was imported there before
    from landscape.config import build_problem

    run_chunk = run_chunk or _run_chunk_fn()
    key = repr(cfg)
    if key not in _WORKER_PROBLEMS:
        _WORKER_PROBLEMS.clear()
        _WORKER_PROBLEMS[key] = build_problem(cfg)
    return run_chunk(cfg, start, count, problem=_WORKER_PROBLEMS[key])


class RayExecutor(Executor):
    """Chunks as Ray tasks on the cluster at ``address`` (or a local instance); see the module docstring."""

    name = "ray"

    def __init__(self, address: str | None = None, *, max_in_flight: int | None = None, run_chunk=None):
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'landscape[ray]' (or pip install ray)") from None
        self.ray = ray
        self._run_chunk = run_chunk
        self._started = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except ConnectionError as e:
                raise ConfigError(f"--address {address}: cannot connect to a Ray cluster ({e})") from None
            self._started = True
        res = ray.cluster_resources()
        self.gpus = int(res.get("GPU", 0))
        self.cpus = int(res.get("CPU", 1))
        self.n_workers = max(1, self.gpus if self.gpus else self.cpus)
        opts = {"num_gpus": 1, "num_cpus": 1} if self.gpus else {"num_cpus": 1}
        self._remote = ray.remote(**opts)(_ray_task)
        self.max_in_flight = max_in_flight or 2 * self.n_workers

    def describe(self) -> dict:
        return {"executor": self.name, "workers": self.n_workers, "gpus": self.gpus, "cpus": self.cpus}

    def run(self, tasks):
        ray = self.ray
        tasks = iter(tasks)
        in_flight: dict = {}

        def submit() -> bool:
            try:
                chunk, cfg = next(tasks)
            except StopIteration:
                return False
            in_flight[self._remote.remote(cfg, chunk.start, chunk.run_count, self._run_chunk)] = chunk
            return True

        while len(in_flight) < self.max_in_flight and submit():
            pass
        try:
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    chunk = in_flight.pop(ref)
                    result = ray.get(ref)
                    submit()
                    yield chunk, result
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False


def make_executor(name: str, address: str | None = None, *, run_chunk=None) -> Executor:
    """``"local"`` or ``"ray"`` (``address`` only for ray); ``run_chunk`` replaces the engine (tests, benchmarks)."""
    if name == "local":
        if address:
            raise ConfigError("--address is for --executor ray; drop it or add --executor ray")
        return LocalExecutor(run_chunk=run_chunk)
    if name == "ray":
        return RayExecutor(address, run_chunk=run_chunk)
    raise ConfigError(f"--executor {name!r} is not valid; use local or ray")
