"""The analysis stage: analyzers that each look at one certified point, and the engine that batches them.

An analyzer is a strategy object (an equinox Module: hyperparameters that are arrays are traced) with a ``name``
and ``__call__(problem, point, previous) -> dict`` for ONE point:

- ``point`` is a :class:`Point` (trainable ``theta``, accurate ``loss``, ``grad_norm``, ``certified``, ``finite``);
- ``previous`` maps the names returned by the analyzers before it to their values at this point (a jittable
  analyzer receives exactly the names it lists in ``requires``; a missing one is a clear error);
- it returns named values: a scalar becomes a column of the results table (``points.parquet``), an array
  becomes a per-point array (``arrays.npz``), and a name starting with ``_`` is passed on to later analyzers only
  (e.g. ``_hessian``); a jittable analyzer's names in ``device_only`` leave the device only when a later analyzer
  lists them in ``requires`` or ``optional`` (an (n, P, P) array nobody reads is not copied to the host).

The engine (:func:`run_analyzers`) batches each analyzer the way it can run:

- ``jittable = True`` (default): ``jit(vmap(analyzer))`` over the batch, one compilation per shape; if the batch
  raises, each point is retried alone so that only the failing point is marked;
- ``jittable = False``: a host loop over the points (numpy/scipy code), each call guarded, or one call of
  ``call_batch`` where the analyzer answers the whole batch at once (per-point results or errors).

An analyzer with ``only_certified = True`` sees certified points only; the others get its fill values (from
``columns`` for host analyzers, NaN / -1 / False / "" from the output shapes for jittable ones). Every failure
becomes a per-point ``analysis_status`` entry ("ok", or "<analyzer>: <error>") and never stops the batch.

Example (a toy analyzer; see the README's "Python API"):
    >>> import jax.numpy as jnp, landscape as ls
    >>> class MaxWeight(ls.AbstractAnalyzer):
    ...     name = "max_weight"
    ...     def __call__(self, problem, point, previous):
    ...         return {"max_abs_w": jnp.max(jnp.abs(point.theta["w"]))}
"""

from __future__ import annotations

import abc
import time
from typing import Any, ClassVar

import equinox as eqx
import jax
import numpy as np

from ..flow.programs import persistent_jit

__all__ = ["AbstractAnalyzer", "Point", "AnalysisResult", "run_analyzers", "fill_value"]


class Point(eqx.Module):
    """One point handed to analyzers (leaves gain a leading axis in a batch).

    Attributes:
        theta: trainable parameters (dict pytree).
        loss: loss at theta (accurate form).
        grad_norm: |grad L(theta)|.
        certified: grad_norm <= the certification tolerance (and finite).
        finite: theta, loss and gradient are finite and the flow did not diverge.

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> point = ls.Point(theta={"w": jnp.eye(3)[:2], "a": jnp.ones(2)}, loss=jnp.asarray(0.0),
        ...                  grad_norm=jnp.asarray(0.0), certified=jnp.asarray(True), finite=jnp.asarray(True))
        >>> point.theta["w"].shape, bool(point.certified)
        ((2, 3), True)
    """

    theta: Any
    loss: Any
    grad_norm: Any
    certified: Any
    finite: Any


class AbstractAnalyzer(eqx.Module):
    """One analysis of one point; see the module docstring.

    Class attributes:
        name: the analyzer's name (as written in ``[analysis] analyzers``).
        requires: names from earlier analyzers that it reads from ``previous``.
        optional: names it reads from ``previous`` when an earlier analyzer returned them.
        device_only: jittable analyzers: private (``_``) outputs copied to the host only when a later analyzer
            names them in ``requires`` or ``optional`` (large matrices, e.g. the Hessian's eigenvectors).
        jittable: whether ``__call__`` is pure JAX (vmapped and jitted by the engine) or host code (looped).
        only_certified: run on certified points only.
        columns: host analyzers: every column they return with its fill value (the table schema).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> thetas = {"w": jnp.stack([jnp.eye(3)[:2], jnp.zeros((2, 3))]), "a": jnp.stack([jnp.ones(2), jnp.zeros(2)])}
        >>> points = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(2),
        ...                   certified=jnp.array([True, True]), finite=jnp.array([True, True]))  # teacher, origin
        >>> class MaxWeight(ls.AbstractAnalyzer):
        ...     name = "max_weight"
        ...     def __call__(self, problem, point, previous):  # one point; the engine vmaps and jits it
        ...         return {"max_abs_w": jnp.max(jnp.abs(point.theta["w"]))}
        >>> ls.run_analyzers([MaxWeight()], problem, points).columns["max_abs_w"].tolist()
        [1.0, 0.0]
    """

    name: ClassVar[str] = "analyzer"
    requires: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    device_only: ClassVar[tuple[str, ...]] = ()
    jittable: ClassVar[bool] = True
    only_certified: ClassVar[bool] = False
    columns: ClassVar[dict] = {}

    def applies_to(self, problem) -> bool:
        """Whether this analyzer runs at all on ``problem`` (e.g. symmetry: two-layer students only)."""
        return True

    def prepare(self, problem) -> AbstractAnalyzer:
        """Once per batch, before any point: an analyzer with per-problem work done (default: itself)."""
        return self

    @abc.abstractmethod
    def __call__(self, problem, point: Point, previous: dict) -> dict:
        """Named results at one point (see the module docstring)."""

    def call_batch(self, problem, points: Point, previous: dict) -> list | None:
        """Host analyzers (``jittable = False``) may answer a whole batch at once (host numpy leaves with a leading
        axis): a list with, per point, its dict of results or the exception it raised. ``None`` (the default): the
        engine calls ``__call__`` point by point (it does that too if this raises)."""
        return None

    def finalize(self, outputs: dict) -> dict:
        """Host-side post-processing of the batched outputs (numpy arrays), e.g. integer codes to names."""
        return outputs


class AnalysisResult(eqx.Module):
    """What the analysis stage produced for a batch of n points (host numpy arrays).

    Attributes:
        columns: name -> (n,) array: the table columns, in analyzer order.
        arrays: name -> (n, ...) array: per-point arrays (e.g. ``eigenvalues``).
        status: (n,) str: "ok" or "<analyzer>: <error>; ..." per point.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> thetas = {"w": jnp.stack([jnp.eye(3)[:2], jnp.zeros((2, 3))]), "a": jnp.stack([jnp.ones(2), jnp.zeros(2)])}
        >>> points = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(2),
        ...                   certified=jnp.array([True, True]), finite=jnp.array([True, True]))  # teacher, origin
        >>> res = ls.run_analyzers([ls.HessianSpectrum(), ls.Classify()], problem, points)
        >>> sorted(res.columns)[:4], res.arrays["eigenvalues"].shape, res.status.tolist()
        (['index', 'is_global', 'kind', 'kind_hessian'], (2, 8), ['ok', 'ok'])
    """

    columns: dict
    arrays: dict
    status: np.ndarray


def fill_value(dtype):
    """The value a column of ``dtype`` takes where its analyzer did not run: NaN, -1, False or ""."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iu":
        return -1
    if dtype.kind == "b":
        return False
    return ""


def _error_text(name: str, err: BaseException) -> str:
    msg = " ".join(str(err).split())
    if len(msg) > 200:
        msg = msg[:197] + "..."
    return f"{name}: {type(err).__name__}: {msg}"


def _take(tree, idx):
    return jax.tree.map(lambda x: x[idx], tree)


@persistent_jit
def _vmapped(analyzer, problem, points, previous):
    return jax.vmap(lambda p, prev: analyzer(problem, p, prev))(points, previous)


@persistent_jit
def _single(analyzer, problem, point, previous):
    return analyzer(problem, point, previous)


def _check_unique(analyzers) -> None:
    names = [a.name for a in analyzers]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"analyzer {dup!r} is listed twice; list each analyzer once")


def _run_jittable(analyzer, problem, points: Point, previous: dict, sel: np.ndarray, n: int, status: list,
                  keep=lambda name: True):
    """Outputs of a jittable analyzer on the points ``sel`` (host arrays, fill values elsewhere); only the names
    ``keep`` accepts are copied to the host."""
    sub_points, sub_prev = _take(points, sel), _take(previous, sel)
    if sel.size:
        try:
            res = _vmapped(analyzer, problem, sub_points, sub_prev)
            res = jax.device_get({k: v for k, v in res.items() if keep(k)})
            out = {k: np.full((n, *v.shape[1:]), fill_value(v.dtype), dtype=v.dtype) for k, v in res.items()}
            for k, v in res.items():
                out[k][sel] = v
            return out
        except Exception:  # noqa: BLE001  (retry point by point so that only the failing point is marked)
            pass
    # the output shapes without running it (a second trace: only for an empty selection or a failed batch)
    shapes = jax.eval_shape(lambda p, q: jax.vmap(lambda a, b: analyzer(problem, a, b))(p, q), sub_points, sub_prev)
    out = {k: np.full((n, *s.shape[1:]), fill_value(s.dtype), dtype=s.dtype) for k, s in shapes.items() if keep(k)}
    for i in sel:
        try:
            res = _single(analyzer, problem, _take(points, i), _take(previous, i))
            res = jax.device_get({k: v for k, v in res.items() if keep(k)})
            for k, v in res.items():
                out[k][i] = v
        except Exception as err:  # noqa: BLE001
            status[i].append(_error_text(analyzer.name, err))
    return out


def _run_host(analyzer, problem, points: Point, previous: dict, sel: np.ndarray, n: int, status: list):
    """Outputs of a host analyzer: a guarded loop over ``sel``; declared columns get fill values elsewhere."""
    cols = {k: [v] * n for k, v in analyzer.columns.items()}
    extra: dict[str, list] = {}
    host_points = jax.device_get(points)
    host_prev = {k: v for k, v in previous.items()}
    batch = None
    if sel.size:
        try:
            batch = analyzer.call_batch(problem, _take(host_points, sel), {k: v[sel] for k, v in host_prev.items()})
        except Exception:  # noqa: BLE001  (fall back to the point-by-point loop, which marks the failing points)
            batch = None
    for pos, i in enumerate(sel):
        try:
            res = analyzer(problem, _take(host_points, i), {k: v[i] for k, v in host_prev.items()}) \
                if batch is None else batch[pos]
            if isinstance(res, BaseException):
                raise res
        except Exception as err:  # noqa: BLE001
            status[i].append(_error_text(analyzer.name, err))
            continue
        for k, v in res.items():
            if k in cols:
                cols[k][i] = v
            elif k.startswith("_"):
                extra.setdefault(k, [None] * n)[i] = v
            else:
                status[i].append(f"{analyzer.name}: returned undeclared column {k!r} (add it to columns)")
    out = {}
    for k, v in cols.items():
        default = analyzer.columns[k]
        dtype = object if isinstance(default, str) else np.asarray(default).dtype
        arr = np.asarray(v, dtype=dtype)
        out[k] = arr.astype(str) if dtype is object else arr
    for k, v in extra.items():
        out[k] = np.asarray(v, dtype=object)
    return out


def run_analyzers(analyzers, problem, points: Point, *, timings: dict | None = None) -> AnalysisResult:
    """Run ``analyzers`` in order over a batch of points; see the module docstring.

    Args:
        analyzers: sequence of :class:`AbstractAnalyzer`.
        problem: the problem the points belong to.
        points: a :class:`Point` whose leaves have a leading axis n.
        timings: if given, receives ``"<name>_s"``: seconds spent in each analyzer.

    Returns:
        :class:`AnalysisResult` with the columns, arrays and per-point status.

    Raises:
        ValueError: an analyzer needs a result no earlier analyzer provides, or two produce the same name.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> thetas = {"w": jnp.stack([jnp.eye(3)[:2], jnp.zeros((2, 3))]), "a": jnp.stack([jnp.ones(2), jnp.zeros(2)])}
        >>> points = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(2),
        ...                   certified=jnp.array([True, True]), finite=jnp.array([True, True]))  # teacher, origin
        >>> res = ls.run_analyzers([ls.HessianSpectrum(), ls.Classify()], problem, points)
        >>> res.columns["kind"].tolist(), res.columns["null_dim"].tolist()  # the origin is flat: H = 0
        (['minimum', 'degenerate'], [2, 8])
    """
    analyzers = [a for a in analyzers if a.applies_to(problem)]
    _check_unique(analyzers)
    n = int(np.shape(points.loss)[0])
    status: list[list[str]] = [[] for _ in range(n)]
    certified = np.asarray(points.certified, bool)
    results: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for pos, analyzer in enumerate(analyzers):
        read_later = {r for later in analyzers[pos + 1:] for r in (*later.requires, *later.optional)}
        missing = [r for r in analyzer.requires if r not in results]
        if missing:
            raise ValueError(f"analyzer {analyzer.name!r} needs {missing[0]!r}, which no earlier analyzer returned; "
                             f"put the analyzer that provides it before {analyzer.name!r}")
        t0 = time.perf_counter()
        analyzer = analyzer.prepare(problem)
        sel = np.flatnonzero(certified) if analyzer.only_certified else np.arange(n)
        if analyzer.jittable:
            prev = {k: results[k] for k in (*analyzer.requires, *analyzer.optional) if k in results}
            keep = lambda k, later=read_later, own=analyzer.device_only: k not in own or k in later  # noqa: E731
            out = _run_jittable(analyzer, problem, points, prev, sel, n, status, keep)  # private and unread: on device
        else:
            out = _run_host(analyzer, problem, points, results, sel, n, status)
        out = analyzer.finalize(out)
        if timings is not None:
            timings[f"{analyzer.name}_s"] = time.perf_counter() - t0
        for k, v in out.items():
            if k in owner:
                raise ValueError(f"analyzers {owner[k]!r} and {analyzer.name!r} both return {k!r}; rename one")
            owner[k] = analyzer.name
            results[k] = v
    columns = {k: v for k, v in results.items() if not k.startswith("_") and np.ndim(v) == 1}
    arrays = {k: v for k, v in results.items() if not k.startswith("_") and np.ndim(v) > 1}
    text = np.asarray(["; ".join(s) if s else "ok" for s in status], dtype=str)
    return AnalysisResult(columns=columns, arrays=arrays, status=text)
