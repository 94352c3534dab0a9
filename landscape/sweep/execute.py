"""Execute one chunk of initialisations of one resolved config: flow -> polish -> Hessian -> classification.

This is the batching boundary (style.md, section b): keys are derived per initialisation id, parameters are drawn
with ``vmap``, flows run as one ``jit(vmap(run_flow))``, polishing and Hessians are vmapped too. Every jitted
function takes the problem as a pytree argument, so chunks of the same shapes reuse one compilation.

Initialisation ``i`` uses the key ``fold_in(PRNGKey(init.seed), i)``: results do not depend on chunking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..analysis.classify import classify_spectrum
from ..analysis.hessian import hessian_matrix
from ..config import Config
from ..flow import NONFINITE, make_flow, polish, run_flows, status_name
from ..flow.init import init_params
from ..problem.networks import TwoLayerNet
from ..problem.problem import Problem, build_problem, loss_accurate

__all__ = ["ChunkResult", "run_chunk", "init_keys", "initial_params"]


@dataclass
class ChunkResult:
    """Rows (one per initialisation id), arrays (leading axis = count) and timings (seconds) of one chunk."""

    rows: pd.DataFrame
    arrays: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def init_keys(seed: int, ids) -> jax.Array:
    """Per-initialisation keys fold_in(PRNGKey(seed), id)."""
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(jnp.asarray(ids))


@partial(jax.jit, static_argnames=("distribution",))
def initial_params(problem: Problem, keys, scale, *, distribution: str):
    """A batch of initial trainable parameters, one per key (leading axis = len(keys))."""
    return jax.vmap(lambda k: init_params(k, problem, scale=scale, distribution=distribution))(keys)


@partial(jax.jit, static_argnames=("max_iter",))
def _polish_batch(problem: Problem, thetas, tol, *, max_iter: int):
    return jax.vmap(lambda t: polish(problem, t, tol=tol, max_iter=max_iter))(thetas)


@jax.jit
def _hessians(problem: Problem, thetas):
    h = jax.vmap(lambda t: hessian_matrix(problem, t))(thetas)
    eigs = jnp.linalg.eigvalsh(h)
    return h, eigs


@jax.jit
def _accurate_losses(problem: Problem, thetas):
    return jax.vmap(lambda t: loss_accurate(problem, t))(thetas)


@jax.jit
def _loss_and_grad_norm(problem: Problem, thetas):
    def one(t):
        val, g = jax.value_and_grad(problem.loss)(t)
        return val, jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(g)))

    return jax.vmap(one)(thetas)


def _block(tree):
    return jax.block_until_ready(tree)


def _flatten_named(prefix: str, tree) -> dict:
    """{"prefix.w": array, ...} for a params dict (nested dicts/tuples joined with dots)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = ".".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        out[f"{prefix}.{name}"] = np.asarray(leaf)
    return out


def _with_symmetry_columns(rows, problem, theta, hess, cfg, certified, loss_np, gn_np):
    """Add the symmetry analyzer's columns; only certified points are analyzed (the rest: "not_analyzed").

    ``kind`` becomes the analyzer's refinement for certified points (zero eigenvalues all explained by exact
    symmetry directions make a minimum, not a degenerate point); the Hessian-only verdict stays in ``kind_hessian``.
    """
    from ..analysis.symmetry import analyze_points
    from ..analysis.symmetry.analyze import unanalyzed_columns

    idx = np.flatnonzero(certified)
    cols = {k: list(v) for k, v in unanalyzed_columns(len(rows)).items()}
    cols["kind_refined"] = list(rows["kind"])
    if idx.size:
        sub, _ = analyze_points(
            problem,
            jax.tree.map(lambda x: x[idx], theta),
            losses=loss_np[idx],
            grad_norms=gn_np[idx],
            hessians=np.asarray(hess)[idx],
            zero_tol=cfg.analysis.zero_tol,
            global_loss_tol=cfg.analysis.global_loss_tol,
        )
        for k, v in sub.items():
            for j, i in enumerate(idx):
                cols[k][i] = v[j]
    rows = rows.copy()
    for k, v in cols.items():
        rows[k] = v
    rows["kind_hessian"] = rows["kind"]
    rows["kind"] = rows["kind_refined"].astype(str)
    return rows


def run_chunk(cfg: Config, start: int, count: int, *, problem: Problem | None = None, sharding=None) -> ChunkResult:
    """Run initialisations ``start .. start + count - 1`` of ``cfg``; see the module docstring.

    ``sharding`` (e.g. a NamedSharding over a 1-D device mesh) places the batch axis across devices; every later
    vmapped computation follows the placement of the initial parameters.

    Returns a :class:`ChunkResult` whose rows hold, per id: final loss and gradient norm after polishing, the
    classification (kind, index, null_dim, ...), flow status, time and steps, and certification figures.
    """
    timings = {}
    t0 = time.perf_counter()
    problem = build_problem(cfg) if problem is None else problem
    ids = np.arange(start, start + count)
    keys = init_keys(cfg.init.seed, ids)
    if sharding is not None:
        keys = jax.device_put(keys, sharding)
    theta0 = _block(initial_params(problem, keys, cfg.init.scale, distribution=cfg.init.distribution))
    timings["init_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    flow = make_flow(cfg.flow)
    traj = _block(run_flows(problem, flow, theta0))
    timings["flow_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    flow_loss, flow_gn = _loss_and_grad_norm(problem, traj.theta)
    if cfg.polish.enabled:
        pol = _block(_polish_batch(problem, traj.theta, cfg.polish.tol, max_iter=cfg.polish.max_iter))
        theta, loss_v, gn, n_iter = pol.theta, pol.loss, pol.grad_norm, pol.n_iter
    else:
        theta, loss_v, gn, n_iter = traj.theta, flow_loss, flow_gn, jnp.zeros(count, jnp.int32)
    timings["polish_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    del loss_v  # reported losses come from the accurate residual form (exact to ~1e-30 at global minima)
    loss_np, gn_np = np.asarray(_accurate_losses(problem, theta), float), np.asarray(gn, float)
    flow_status = np.asarray(traj.status)
    finite = np.isfinite(loss_np) & np.isfinite(gn_np) & (flow_status != int(NONFINITE))
    certified = finite & (gn_np <= cfg.polish.tol)
    hess, eigs = _block(_hessians(problem, theta))
    eigs = np.asarray(eigs)
    timings["hessian_s"] = time.perf_counter() - t0
    cls = classify_spectrum(
        eigs,
        loss_np,
        zero_tol=cfg.analysis.zero_tol,
        global_loss_tol=cfg.analysis.global_loss_tol,
        certified=certified,
        finite=finite,
    )
    param_norm = np.sqrt(sum(np.sum(np.asarray(x, float) ** 2, axis=tuple(range(1, x.ndim))) for x in
                             jax.tree.leaves(theta)))
    rows = pd.DataFrame(
        {
            "id": ids,
            "loss": loss_np,
            "grad_norm": gn_np,
            **cls,
            "certified": certified,
            "flow_status": [status_name(int(s)) for s in flow_status],
            "t_final": np.asarray(traj.t_final, float),
            "n_steps": np.asarray(traj.n_steps, np.int64),
            "flow_loss": np.asarray(flow_loss, float),
            "flow_grad_norm": np.asarray(flow_gn, float),
            "polish_iters": np.asarray(n_iter, np.int64),
            "param_norm": param_norm,
        }
    )
    t0 = time.perf_counter()
    if isinstance(problem.student, TwoLayerNet):
        rows = _with_symmetry_columns(rows, problem, theta, hess, cfg, certified, loss_np, gn_np)
    timings["symmetry_s"] = time.perf_counter() - t0
    arrays = {
        "id": ids,
        **_flatten_named("theta", theta),
        **_flatten_named("theta0", theta0),
        "eigenvalues": eigs,
        "curve.t": np.asarray(traj.ts, float),
        "curve.loss": np.asarray(traj.loss, float),
        "curve.grad_norm": np.asarray(traj.grad_norm, float),
        "curve.param_norm": np.asarray(traj.param_norm, float),
    }
    if traj.params is not None:
        arrays.update(_flatten_named("curve.params", traj.params))
    return ChunkResult(rows=rows, arrays=arrays, timings=timings)

