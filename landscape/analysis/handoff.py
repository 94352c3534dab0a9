"""Early hand-off from the flow to Newton polishing, with a guard that flows on wherever Newton disagrees.

A gradient flow decides *which* critical point an initialisation reaches; Newton polishing only certifies it. Near
a minimum the flow converges linearly at the rate of the smallest Hessian eigenvalue lambda_min, so going from
|grad L| = 1e-4 to 1e-6 costs about ln(100) / lambda_min time units: at d = 7 in the Safran-Shamir census
(lambda_min ~ 0.014 at the spurious minimum) that final approach was 88 % of all solver steps. Newton converges
quadratically from anywhere in the minimum's basin of attraction for Newton, so stopping the flow there loses
nothing, provided the point Newton reaches is the one the flow would have reached.

The rule (:func:`explore` with ``Polish(handoff_tol=...)``):

1. every flow stops at |grad L| <= ``handoff_tol`` (e.g. 1e-3) instead of the flow's ``grad_tol`` (1e-6);
2. the end points are polished, certified and analysed as usual;
3. a lane the loose tolerance stopped (status CONVERGED) is *re-flowed* from its initialisation with the flow's own
   ``grad_tol`` unless Newton certified a **minimum** there (``kind == "minimum"``, from
   :class:`landscape.analysis.Classify`) at a loss **no higher** than the flow's end point (up to 1e-12 relative).
   A gradient flow only descends, so a higher loss cannot be its limit; a saddle, a degenerate point or a failed
   polish may be a plateau the flow was still crossing. The re-flowed lanes are padded to one of the packed flow's
   bucket sizes, and only they are certified and analysed again, at that padded size, and merged into the batch's
   results (the other lanes keep theirs: every analyzer looks at one point).

Lanes that reached the tight tolerance, ran to ``t_max`` or diverged are not affected (their flows are the same with
either tolerance). The re-flowed lanes give exactly the results of a run with the tight tolerance (same
initialisation, same solver steps), so the only lanes whose result can differ from a tight run are those where Newton
certified a descending minimum from |grad L| <= ``handoff_tol``. ``experiments/bench_handoff.py`` measures that on
shipped configs (same seeds, tight against hand-off).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..flow.trajectory import CONVERGED

__all__ = ["LOSS_SLACK", "loosened", "reflow_mask", "padded_indices", "take_rows", "merge_rows"]

LOSS_SLACK = 1.0e-12
"""Relative slack when checking that polishing did not raise the loss above the flow's end (rounding only)."""


def loosened(flow, handoff_tol: float):
    """``flow`` with its stopping tolerance ``grad_tol`` replaced by ``handoff_tol`` (a traced leaf: no recompile)."""
    return eqx.tree_at(lambda f: f.grad_tol, flow, jnp.asarray(handoff_tol, float))


def reflow_mask(status, columns: dict, loss, flow_loss, certified) -> np.ndarray:
    """(n,) bool: lanes whose loose stop Newton did not confirm (module docstring, rule 3).

    Args:
        status: (n,) flow status codes; only CONVERGED lanes (stopped by the loose tolerance) can be re-flowed.
        columns: the analysis columns; ``kind`` must be among them.
        loss: (n,) accurate loss after polishing; flow_loss: (n,) loss at the flow's end; certified: (n,) bool.
    """
    status, loss, flow_loss = np.asarray(status), np.asarray(loss, float), np.asarray(flow_loss, float)
    kind = np.asarray(columns["kind"]).astype(str)
    descended = loss <= flow_loss + LOSS_SLACK * np.abs(flow_loss)
    confirmed = np.asarray(certified, bool) & (kind == "minimum") & descended
    return (status == CONVERGED) & ~confirmed


def padded_indices(idx: np.ndarray, sizes) -> np.ndarray:
    """``idx`` padded (repeating its first entry) to the smallest of ``sizes`` that holds it, so that re-flowing a
    few lanes compiles one of a few batch shapes (the packed flow's buckets) instead of one per count."""
    fit = [s for s in sorted(sizes) if s >= len(idx)]
    size = fit[0] if fit else len(idx)
    return np.concatenate([idx, np.full(size - len(idx), idx[0], idx.dtype)])


def take_rows(tree, rows: np.ndarray):
    """Rows ``rows`` of every leaf, on the host (numpy): an eager device gather would compile once per count."""
    return jax.tree.map(lambda x: np.asarray(x)[rows], jax.device_get(tree))


def merge_rows(tree, sub, idx: np.ndarray):
    """``tree`` with rows ``idx`` replaced by the first len(idx) rows of ``sub`` (pytrees of the same structure,
    leading axis n), on the host (numpy) for the same reason as :func:`take_rows`. Strings keep their full length
    (the dtypes are promoted: ``<U5`` and ``<U9`` give ``<U9``)."""
    k = len(idx)

    def merged(x, y):
        x, y = np.asarray(x), np.asarray(y)
        out = np.array(x, dtype=np.promote_types(x.dtype, y.dtype))
        out[idx] = y[:k]
        return out

    return jax.tree.map(merged, jax.device_get(tree), jax.device_get(sub))
