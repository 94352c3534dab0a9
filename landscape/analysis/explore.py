"""The pipeline as a library: flows from many initialisations -> certify -> analyzers, in one call.

    res = explore(problem, GradientFlow(t_max=300.0), key=jax.random.key(0), n=64)
    res.table()      # one row per initialisation: the columns ``landscape run`` stores in points.parquet

This is the batching boundary (``../shared/style.md`` section b): initialisation i uses the key
``fold_in(key, start + i)`` (results do not depend on how a run is chunked), parameters are drawn with ``vmap``,
flows run vmapped in segments with the unfinished lanes re-packed into smaller batches
(:func:`landscape.flow.packing.run_flows_packed`; one ``jit(vmap(flow.run))`` with a ``sharding``), polishing is
one ``jit(vmap(polish))``, and the analyzers run in the analysis stage (:mod:`landscape.analysis.analyzer`).
Every jitted function takes the problem, the flow and the settings as pytree arguments with their numbers as
traced leaves, so batches of the same shapes share one compilation. ``landscape run`` (:mod:`landscape.sweep`) is
a thin layer over :func:`explore`.

Certification (:func:`certify`): a point is a *certified critical point* when, after polishing, it is finite and
its gradient norm is at most ``Polish.tol`` (default 1e-10), measured in float64; the loss reported is the
accurate form (:meth:`landscape.problem.TeacherStudent.loss_accurate`).
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..flow.init import AbstractInit, GaussianInit
from ..flow.lanes import lanes_map, unshard
from ..flow.packing import POLISH_SEGMENT, PackStats, buckets, polish_packed, run_flows_packed
from ..flow.programs import persistent_jit
from ..flow.trajectory import NONFINITE, AbstractFlow, Trajectory, status_name
from .analyzer import AnalysisResult, Point, fill_value, run_analyzers
from .classify import Classify
from .handoff import loosened, merge_rows, padded_indices, reflow_mask, take_rows
from .hessian import HessianSpectrum
from .symmetry.analyze import SymmetryAnalysis

STOP_REASONS = ("certified", "diverged", "not_finite", "max_iter", "stagnated", "not_polished")
"""Names of :attr:`Certified.stop` codes."""

__all__ = ["STOP_REASONS", "Polish", "Certified", "Exploration", "certify", "explore", "default_analyzers", "grad_norm"]


class Polish(eqx.Module):
    """Certification settings: Levenberg-Marquardt/Newton polishing of end points (:func:`landscape.flow.polish`).

    Each end point is polished by steps -(H^2 + mu I)^{-1} H g on grad L = 0 (mu ~ |g| far from, ~ |g|^2 near a
    critical point) and certified when |grad L| <= tol in float64.

    Args:
        tol: certification threshold on |grad L| (traced), default 1e-10.
        max_iter: polishing iterations (static), default 300.
        enabled: polish at all (static); without polishing a point certifies only if the flow already met ``tol``.
        handoff_tol: hand the flow over to polishing at |grad L| <= handoff_tol instead of the flow's
            ``grad_tol``; lanes where Newton does not certify a minimum at a loss no higher than the flow's end are
            flowed again to ``grad_tol`` (:mod:`landscape.analysis.handoff`). Default 1e-3; None or 0: no early
            hand-off (every flow runs to its ``grad_tol``).
            It needs the ``classify`` analyzer (the ``kind`` column) and polishing; without them it is ignored.
        segment_iters: polishing passes per segment (static), default 8: a batch on one device is polished in
            segments with the points still polishing re-packed into smaller batches
            (:func:`landscape.flow.packing.polish_packed`; the same points, without one slow point holding the
            batch); 0: one vmapped loop.

    Example:
        >>> import landscape as ls
        >>> settings = ls.Polish(tol=1e-12, max_iter=50)
        >>> float(settings.tol), settings.max_iter, settings.enabled, settings.segment_iters
        (1e-12, 50, True, 8)

    References:
        Yamashita & Fukushima, On the Rate of Convergence of the Levenberg-Marquardt Method, Computing (Suppl.)
        15, 2001.

        Fan & Yuan, On the Quadratic Convergence of the Levenberg-Marquardt Method without Nonsingularity
        Assumption, Computing 74, 2005.
    """

    tol: jax.Array
    max_iter: int = eqx.field(static=True)
    enabled: bool = eqx.field(static=True)
    handoff_tol: jax.Array
    segment_iters: int = eqx.field(static=True)

    def __init__(self, tol=1.0e-10, *, max_iter: int = 300, enabled: bool = True, handoff_tol: float | None = 1.0e-3,
                 segment_iters: int = POLISH_SEGMENT):
        self.tol = jnp.asarray(tol, float)
        self.max_iter = int(max_iter)
        self.enabled = bool(enabled)
        self.handoff_tol = jnp.asarray(0.0 if handoff_tol is None else handoff_tol, float)  # traced: 0 is off
        self.segment_iters = int(segment_iters)


class Certified(eqx.Module):
    """End points after polishing (leaves have a leading axis n).

    Attributes:
        theta: polished trainable parameters.
        loss: accurate loss at theta.
        grad_norm: |grad L(theta)|.
        certified: finite and grad_norm <= tol.
        finite: loss, gradient and flow finite.
        n_iter: polishing iterations.
        start_loss, start_grad_norm: loss and |grad L| before polishing (at the flow's end).
        stop: int code of why certification ended, named by :data:`STOP_REASONS`: certified, diverged (the flow),
            not_finite, max_iter (polishing used ``Polish.max_iter`` iterations: typically linear convergence along
            nearly flat directions of a near-degenerate saddle), stagnated (polishing stopped earlier, at round-off),
            not_polished (``Polish.enabled`` false and the flow did not reach ``tol``).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> thetas = {"w": jnp.stack([jnp.eye(3)[:2] + 1e-3, jnp.zeros((2, 3))]),
        ...           "a": jnp.stack([jnp.ones(2), jnp.zeros(2)])}  # near the teacher, and the origin
        >>> points = ls.certify(problem, thetas)
        >>> points.theta["w"].shape, points.certified.tolist(), (points.loss < 1e-18).tolist()
        ((2, 2, 3), [True, True], [True, False])
    """

    theta: dict
    loss: jax.Array
    grad_norm: jax.Array
    certified: jax.Array
    finite: jax.Array
    n_iter: jax.Array
    start_loss: jax.Array
    start_grad_norm: jax.Array
    stop: jax.Array


def grad_norm(problem, theta):
    """(L(theta), |grad L(theta)|): the Euclidean norm of the gradient over all trainable parameters."""
    value, g = jax.value_and_grad(problem.loss)(theta)
    return value, jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(g)))


@persistent_jit
def _certify(problem, thetas, polished, settings: Polish, diverged):
    """Certification from the flows' end points ``thetas`` and ``polished`` = (theta, |grad|, iterations) of
    :func:`landscape.flow.packing.polish_packed` (None: polishing off). The per-point measurements (start |grad|
    and the accurate loss, no LAPACK) run on the lanes of every device (:func:`landscape.flow.lanes.lanes_map`);
    the result stays split over them (:func:`certify` unshards)."""
    theta = thetas if polished is None else polished[0]
    start_loss, start_gn, loss = lanes_map(lambda tt: (*grad_norm(problem, tt[0]), problem.loss_accurate(tt[1])),
                                           (thetas, theta))
    if polished is None:
        gn, n_iter = start_gn, jnp.zeros(start_gn.shape, jnp.int32)
    else:
        gn, n_iter = polished[1], polished[2]
    # a diverged flow keeps its end state: report the divergence, not a point polishing found somewhere else
    keep = lambda flow_value, new_value: jnp.where(  # noqa: E731
        diverged.reshape(diverged.shape + (1,) * (jnp.ndim(new_value) - 1)), flow_value, new_value)
    theta = jax.tree.map(keep, thetas, theta)
    loss, gn = keep(start_loss, loss), keep(start_gn, gn)
    n_iter = jnp.where(diverged, 0, n_iter)
    finite = jnp.isfinite(loss) & jnp.isfinite(gn) & ~diverged
    certified = finite & (gn <= settings.tol)
    stop = jnp.select([certified, diverged, ~finite, jnp.asarray(not settings.enabled), n_iter >= settings.max_iter],
                      [0, 1, 2, 5, 3], default=4).astype(jnp.int32)
    return Certified(theta=theta, loss=loss, grad_norm=gn, certified=certified, finite=finite, n_iter=n_iter,
                     start_loss=start_loss, start_grad_norm=start_gn, stop=stop)


def certify(problem, thetas, *, polish: Polish | None = None, diverged=None) -> Certified:
    """Polish a batch of points and certify them as critical points (module docstring); one jit per shape.

    Args:
        problem: the problem.
        thetas: trainable parameter dicts with a leading axis n.
        polish: :class:`Polish` settings (default ``Polish()``: tol 1e-10, 300 iterations).
        diverged: (n,) bool, points whose flow diverged: never certified, reported unpolished (their loss is
            the divergence the flow saw), default none.

    Returns:
        :class:`Certified`.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> thetas = {"w": jnp.stack([jnp.eye(3)[:2] + 1e-3, jnp.zeros((2, 3))]),
        ...           "a": jnp.stack([jnp.ones(2), jnp.zeros(2)])}  # near the teacher, and the origin
        >>> points = ls.certify(problem, thetas)
        >>> points.certified.tolist(), (points.grad_norm <= 1e-10).tolist()
        ([True, True], [True, True])
    """
    return _certify_batch(problem, thetas, Polish() if polish is None else polish, diverged)[0]


def _certify_batch(problem, thetas, polish: Polish, diverged) -> tuple[Certified, PackStats | None]:
    """:func:`certify`, and the :class:`PackStats` of polishing (counting passes; None with polishing off)."""
    n = jax.tree.leaves(thetas)[0].shape[0]
    diverged = jnp.zeros(n, bool) if diverged is None else jnp.asarray(diverged, bool)
    polished = stats = None
    if polish.enabled:  # ``eigh`` in every pass: on one device (flow.lanes), or a GPU batch's own split
        one_device = all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(thetas) if hasattr(x, "sharding"))
        # re-packed segments; a batch split over devices keeps its layout (one loop)
        res, stats = polish_packed(problem, thetas, tol=polish.tol, max_iter=polish.max_iter,
                                   segment=polish.segment_iters if one_device else 0)
        polished = (res.theta, res.grad_norm, res.n_iter)
    points = _certify(problem, thetas, polished, polish, diverged)
    # on CPU devices LAPACK must see arrays on one device (flow.lanes); GPUs keep the split
    return (unshard(points) if jax.local_devices()[0].platform == "cpu" else points), stats


def default_analyzers(*, zero_tol=1.0e-7, global_loss_tol=1.0e-20) -> tuple:
    """The analyzers ``landscape run`` uses by default: Hessian spectrum, symmetry (two-layer students), classify.

    Args:
        zero_tol: relative zero-eigenvalue tolerance |lambda| <= zero_tol * max|lambda| (symmetry and classify).
        global_loss_tol: loss at or below which a point is a zero-loss global minimum.

    Returns:
        ``(HessianSpectrum(), SymmetryAnalysis(...), Classify(...))``, in the order they must run.

    Example:
        >>> import landscape as ls
        >>> [a.name for a in ls.default_analyzers(zero_tol=1e-8)]
        ['hessian', 'symmetry', 'classify']

    References:
        Şimşek et al., `Geometry of the Loss Landscape in Overparameterized Neural Networks: Symmetries and
        Invariances <https://arxiv.org/abs/2105.12221>`_, ICML 2021.
    """
    return (HessianSpectrum(), SymmetryAnalysis(zero_tol, global_loss_tol),
            Classify(zero_tol=zero_tol, global_loss_tol=global_loss_tol))


@persistent_jit
def _initial(problem, init: AbstractInit, keys):
    return jax.vmap(lambda k: init.sample(k, problem))(keys)


@persistent_jit
def _flows(problem, flow: AbstractFlow, theta0):
    return jax.vmap(lambda t: flow.run(problem, t))(theta0)


class Exploration(eqx.Module):
    """The result of :func:`explore` for n initialisations (a pytree; leaves have a leading axis n).

    Attributes:
        ids: (n,) initialisation ids.
        theta0: initial parameters.
        trajectory: the flows' :class:`landscape.flow.Trajectory`.
        points: the polished, certified end points (:class:`Certified`).
        analysis: the analyzers' columns, arrays and per-point status (:class:`AnalysisResult`).
        timings: seconds per stage (init, flow, polish, one entry per analyzer), and the flow's lane-step counts.
        packing: :class:`landscape.flow.PackStats` of the packed flows (useful fraction of lane-steps, bucket
            sizes used), or None with a ``sharding``.
        polish_packing: :class:`landscape.flow.PackStats` of polishing (Levenberg-Marquardt passes useful and
            computed, bucket sizes used; one loop where it was not packed), or None with polishing off.

    Example:
        >>> import jax, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1)),
        ...                             ls.TwoLayer(width=3))
        >>> res = ls.explore(problem, ls.GradientFlow(t_max=300.0), key=jax.random.key(0), n=8)  # doctest: +SKIP
        >>> len(res), res.trajectory.loss.shape, res.points.theta["w"].shape  # doctest: +SKIP
        (8, (8, 64), (8, 3, 4))
        >>> sorted(res.timings)  # doctest: +SKIP
        ['classify_s', 'flow_s', 'hessian_s', 'init_s', 'polish_s', 'symmetry_s']
    """

    ids: np.ndarray
    theta0: dict
    trajectory: Trajectory
    points: Certified
    analysis: AnalysisResult
    timings: dict
    packing: PackStats | None = None
    polish_packing: PackStats | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def table(self):
        """A pandas DataFrame, one row per initialisation: the columns ``landscape run`` stores.

        Returns:
            ``pandas.DataFrame`` with n rows: ``id``, accurate ``loss`` and ``grad_norm`` after polishing, every
            analyzer column (``kind``, ``index``, ``null_dim``, ``sym_class``, ...), ``certified``, the flow's
            ``flow_status``, ``t_final``, ``n_steps``, ``flow_loss``, ``flow_grad_norm``, then ``polish_iters``,
            ``param_norm`` and ``analysis_status``.

        Example:
            >>> import jax, landscape as ls
            >>> problem = ls.TeacherStudent(ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1)),
            ...                             ls.TwoLayer(width=3))
            >>> res = ls.explore(problem, ls.GradientFlow(t_max=300.0), key=jax.random.key(0), n=8)  # doctest: +SKIP
            >>> table = res.table()  # doctest: +SKIP
            >>> len(table), list(table.columns[:3])  # doctest: +SKIP
            (8, ['id', 'loss', 'grad_norm'])
            >>> bool((table["grad_norm"][table["certified"]] <= 1e-10).all())  # doctest: +SKIP
            True
        """
        import pandas as pd

        p, tr = jax.device_get(self.points), jax.device_get(self.trajectory)
        theta = jax.device_get(p.theta)
        param_norm = np.sqrt(sum(np.sum(np.asarray(x, float) ** 2, axis=tuple(range(1, np.ndim(x))))
                                 for x in jax.tree.leaves(theta)))
        cols = {"id": np.asarray(self.ids, np.int64), "loss": np.asarray(p.loss, float),
                "grad_norm": np.asarray(p.grad_norm, float)}
        cols.update(self.analysis.columns)
        cols.update({
            "certified": np.asarray(p.certified, bool),
            "flow_status": [status_name(int(s)) for s in np.asarray(tr.status)],
            "t_final": np.asarray(tr.t_final, float),
            "n_steps": np.asarray(tr.n_steps, np.int64),
            "flow_loss": np.asarray(p.start_loss, float),
            "flow_grad_norm": np.asarray(p.start_grad_norm, float),
            "polish_iters": np.asarray(p.n_iter, np.int64),
            "polish_stop": np.asarray([STOP_REASONS[int(c)] for c in np.asarray(p.stop)], dtype=str),
            "param_norm": param_norm,
            "analysis_status": self.analysis.status,
        })
        return pd.DataFrame(cols)

    def arrays(self) -> dict:
        """Per-point arrays by name, as ``landscape run`` stores them in arrays.npz (leading axis n).

        Returns:
            dict name -> numpy array with leading axis n: ``id``, ``theta.<leaf>`` and ``theta0.<leaf>`` (end and
            initial parameters), the analyzers' arrays (``eigenvalues`` (n, P)), the (n, S) curves ``curve.t``,
            ``curve.loss``, ``curve.grad_norm``, ``curve.param_norm`` and, with ``save_params``, ``curve.params.*``.

        Example:
            >>> import jax, landscape as ls
            >>> problem = ls.TeacherStudent(ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1)),
            ...                             ls.TwoLayer(width=3))
            >>> res = ls.explore(problem, ls.GradientFlow(t_max=300.0), key=jax.random.key(0), n=8)  # doctest: +SKIP
            >>> arrays = res.arrays()  # doctest: +SKIP
            >>> arrays["eigenvalues"].shape, arrays["theta.w"].shape, arrays["curve.loss"].shape  # doctest: +SKIP
            ((8, 15), (8, 3, 4), (8, 64))
        """
        tr = jax.device_get(self.trajectory)
        out = {"id": np.asarray(self.ids), **_flatten_named("theta", jax.device_get(self.points.theta)),
               **_flatten_named("theta0", jax.device_get(self.theta0)), **self.analysis.arrays,
               "curve.t": np.asarray(tr.ts, float), "curve.loss": np.asarray(tr.loss, float),
               "curve.grad_norm": np.asarray(tr.grad_norm, float), "curve.param_norm": np.asarray(tr.param_norm, float)}
        if tr.params is not None:
            out.update(_flatten_named("curve.params", tr.params))
        return out


def _flatten_named(prefix: str, tree) -> dict:
    """{"prefix.w": array, ...} for a params dict (nested dicts/tuples joined with dots)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = ".".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        out[f"{prefix}.{name}"] = np.asarray(leaf)
    return out


def explore(problem, flow: AbstractFlow, *, key, n: int, init: AbstractInit | None = None,
            polish: Polish | None = None, analyzers=None, start: int = 0, sharding=None) -> Exploration:
    """Run ``flow`` from ``n`` initialisations, certify the end points and analyze them (module docstring).

    Args:
        problem: a :class:`landscape.TeacherStudent`.
        flow: a :class:`landscape.GradientFlow` or :class:`landscape.OptaxFlow`.
        key: PRNG key; initialisation i (id ``start + i``) uses ``fold_in(key, start + i)``.
        n: number of initialisations.
        init: initialisation strategy (default ``GaussianInit(1.0)``).
        polish: certification settings (default ``Polish()``).
        analyzers: the analysis stage, in order (default :func:`default_analyzers`).
        start: first initialisation id.
        sharding: optional ``jax.sharding`` for the batch axis (e.g. a NamedSharding over devices).

    Returns:
        :class:`Exploration`; ``.table()`` gives the results table.

    Example:
        >>> import jax, landscape as ls
        >>> problem = ls.TeacherStudent(teacher=ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1)),
        ...                             student=ls.TwoLayer(width=3, activation=ls.ReLU()), loss=ls.PopulationLoss())
        >>> res = ls.explore(problem, ls.GradientFlow(t_max=300.0), key=jax.random.key(0), n=8)  # doctest: +SKIP
        >>> sorted(set(res.table()["kind"]))  # doctest: +SKIP
        ['minimum', 'not_converged', 'saddle']

    References:
        Safran & Shamir, `Spurious Local Minima are Common in Two-Layer ReLU Neural Networks
        <https://arxiv.org/abs/1712.08968>`_, ICML 2018.

        Şimşek et al., `Geometry of the Loss Landscape in Overparameterized Neural Networks: Symmetries and
        Invariances <https://arxiv.org/abs/2105.12221>`_, ICML 2021.
    """
    init = GaussianInit(1.0) if init is None else init
    polish = Polish() if polish is None else polish
    analyzers = default_analyzers() if analyzers is None else tuple(analyzers)
    timings = {}
    t0 = time.perf_counter()
    ids = np.arange(start, start + n)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(ids))
    if sharding is not None:
        keys = jax.device_put(keys, sharding)
    theta0 = jax.block_until_ready(_initial(problem, init, keys))
    timings["init_s"] = time.perf_counter() - t0

    early = _handoff_applies(flow, polish, analyzers)
    traj, packing = _flow_stage(problem, loosened(flow, polish.handoff_tol) if early else flow, theta0, sharding,
                                timings)
    points, analysis, polish_packing = _analysis_stages(problem, traj, polish, analyzers, timings)
    if early:  # lanes where Newton did not confirm the loose stop are flowed on to the flow's own grad_tol
        redo = reflow_mask(traj.status, analysis.columns, points.loss, points.start_loss, points.certified)
        timings["handoff_reflowed"] = int(redo.sum())
        if redo.any():
            idx = np.flatnonzero(redo)
            rows = padded_indices(idx, [n] if sharding is not None else buckets(n))  # shapes compiled already
            theta0_sub = take_rows(theta0, rows)
            if sharding is not None:
                theta0_sub = jax.device_put(theta0_sub, sharding)
            sub, sub_packing = _flow_stage(problem, flow, theta0_sub, sharding, timings)
            traj = merge_rows(traj, sub, idx)
            # certify and analyze the re-flowed lanes only, at their padded size (a packed flow's bucket: few
            # shapes), and merge them in; the other lanes keep their points (every analyzer looks at one point)
            sub_points, sub_analysis, sub_polish = _analysis_stages(problem, sub, polish, analyzers, timings)
            polish_packing = _combined(polish_packing, sub_polish)
            points = merge_rows(points, sub_points, idx)
            analysis = _merge_analysis(analysis, sub_analysis, idx)
            packing = _combined(packing, sub_packing)
    if packing is not None:
        timings.update(flow_lane_steps_useful=packing.useful, flow_lane_steps_computed=packing.computed)
    if polish_packing is not None:
        timings.update(polish_passes_useful=polish_packing.useful, polish_passes_computed=polish_packing.computed)
    return Exploration(ids=ids, theta0=theta0, trajectory=traj, points=points, analysis=analysis, timings=timings,
                       packing=packing, polish_packing=polish_packing)


def _combined(a: PackStats | None, b: PackStats | None) -> PackStats | None:
    """The work of two packed runs together (None: not packed)."""
    if a is None or b is None:
        return a if b is None else b
    return PackStats(useful=a.useful + b.useful, computed=a.computed + b.computed, segments=a.segments + b.segments,
                     shapes=tuple(sorted(set(a.shapes) | set(b.shapes), reverse=True)))


def _merge_analysis(analysis: AnalysisResult, sub: AnalysisResult, idx: np.ndarray) -> AnalysisResult:
    """``analysis`` with rows ``idx`` from the first len(idx) rows of ``sub``; a name only one side has (e.g. a
    host analyzer that failed on every point of one side, so that its columns never appeared there) takes its fill
    value on the other."""
    def merged(full: dict, part: dict) -> dict:
        out = {}
        for name in {**full, **part}:
            x = full.get(name)
            y = part.get(name)
            if x is None:
                x = np.full((len(analysis.status),) + np.shape(y)[1:], fill_value(np.asarray(y).dtype))
            if y is None:
                y = np.full((len(sub.status),) + np.shape(x)[1:], fill_value(np.asarray(x).dtype))
            out[name] = merge_rows(x, y, idx)
        return out

    return AnalysisResult(columns=merged(analysis.columns, sub.columns), arrays=merged(analysis.arrays, sub.arrays),
                          status=merge_rows(analysis.status, sub.status, idx))


def _handoff_applies(flow, polish: Polish, analyzers) -> bool:
    """Whether the early hand-off runs: asked for, looser than the flow's own tolerance, polishing on, and a
    ``classify`` analyzer to say which points are minima."""
    tight = getattr(flow, "grad_tol", None)
    return (polish.enabled and tight is not None and float(polish.handoff_tol) > float(tight)
            and any(getattr(a, "name", "") == "classify" for a in analyzers))


def _add(timings: dict, name: str, seconds: float) -> None:
    timings[name] = timings.get(name, 0.0) + seconds  # a hand-off's second pass adds to the first pass's entries


def _flow_stage(problem, flow, theta0, sharding, timings: dict):
    """Flows of a batch: (trajectory, PackStats or None)."""
    t0 = time.perf_counter()
    packing = None
    if sharding is None:  # segments with the running lanes re-packed (no lockstep waste)
        traj, packing = run_flows_packed(problem, flow, theta0)
    else:  # keep the batch's layout over devices: one vmapped run
        traj = _flows(problem, flow, theta0)
    traj = jax.block_until_ready(traj)
    _add(timings, "flow_s", time.perf_counter() - t0)
    return traj, packing


def _analysis_stages(problem, traj, polish: Polish, analyzers, timings: dict):
    """Certify the flows' end points and analyze them: (Certified, AnalysisResult, polishing's PackStats or None)."""
    t0 = time.perf_counter()
    points, stats = _certify_batch(problem, traj.theta, polish, traj.status == NONFINITE)
    points = jax.block_until_ready(points)
    _add(timings, "polish_s", time.perf_counter() - t0)
    stage = {}
    analysis = run_analyzers(analyzers, problem, Point(theta=points.theta, loss=points.loss,
                                                       grad_norm=points.grad_norm, certified=points.certified,
                                                       finite=points.finite), timings=stage)
    for name, seconds in stage.items():
        _add(timings, name, seconds)
    return points, analysis, stats
