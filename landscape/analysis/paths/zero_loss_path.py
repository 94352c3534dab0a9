"""Explicit piecewise-linear paths inside the global-minima manifold (symmetry-induced connectivity).

Şimşek et al. (2021; README science section 1): a teacher of width r* has r*! isolated global minima in a student of
width r*, and one extra neuron connects them all into one manifold, a union of affine subspaces. This module builds
such a connection explicitly. Write every student neuron i as (u_i, a_i), u_i = w_i (with b_i). At a global minimum
each neuron is

- matched to teacher neuron t(i): u_i = s_i v_t (s_i > 0 for a p-homogeneous activation, s_i = 1 otherwise; for odd
  activations also s_i < 0), so sigma(u_i . x) = kappa_i sigma(v_t . x) with kappa_i = sign(s_i) |s_i|^p, and the
  group realises the teacher: sum_{i -> t} kappa_i a_i = c_t;
- zero-output: a_i = 0, any u_i; or dead: u_i = 0 with sigma(0) = 0, any a_i.

Moves that keep the network function f exactly equal to the teacher's, and so the loss exactly zero along the whole
segment (every point of the segment is a global minimum):

1. *zero-output move*: u_j -> u_j' along a line while a_j = 0;
2. *split-ratio move*: with all u fixed, the output weights a of a group along a line between two solutions of
   sum_i kappa_i a_i = c_t (an affine constraint: lines stay on it);
3. *dead-neuron release*: a_j -> 0 while u_j = 0.

Relocating teacher neuron t from its holder i to a free neuron j is (1) u_j -> v_t, then (2) a_i: c_t -> 0,
a_j: 0 -> c_t (after which i is free). The path between two global minima A and B: snap each to the exact manifold
point nearest to it (members projected onto their teacher direction, group sums corrected), bring each to a
*canonical vertex* (one holder per teacher neuron with (u, a) = (v_t, c_t), all other neurons zero-output; split
ratios consolidated by (2), rescaled holders moved by a relocation, dead neurons released by (3)), connect the two
canonical vertices by relocations through free neurons (sorting the holder assignment with m - r* >= 1 free cells,
as for a permutation with a spare register), move the zero-output neurons to B's positions (1), and follow B's
canonicalisation backwards. Certification: the accurate loss (:meth:`landscape.TeacherStudent.loss_accurate`)
evaluated densely along every segment stays <= ``loss_tol`` (1e-25), and every vertex has |grad L| <= ``grad_tol``.
The sequence of subspaces is read off by the symmetry analyzer (:func:`landscape.analysis.symmetry.identify`).

References:
    Şimşek, Ged, Jacot, Spadaro, Hongler, Gerstner, Brea, `Geometry of the Loss Landscape in Overparameterized
    Neural Networks: Symmetries and Invariances <https://arxiv.org/abs/2105.12221>`_, ICML 2021.

    Fukumizu & Amari, Local minima and plateaus in hierarchical structures of multilayer perceptrons, Neural
    Networks 13, 2000.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ...flow.programs import persistent_jit
from ..symmetry.identify import identify, teacher_reduction
from ..symmetry.reduce import Tolerances, reduce_two_layer

__all__ = ["ZeroLossPath", "NotOnManifold", "zero_loss_path", "canonical_vertex_path", "global_structure", "EVAL_BLOCK"]


class NotOnManifold(ValueError):
    """A point given as a global minimum is not one of the symmetry-induced global-minimum subspaces."""


@dataclass(frozen=True)
class ZeroLossPath:
    """A certified piecewise-linear path in the global-minima manifold (numpy, host side).

    Attributes:
        vertices: trainable dict whose leaves have a leading axis K + 1 (the path's corners, snapped endpoints
            first and last).
        moves: K strings, what each segment does.
        s: (N,) arc length of the densely evaluated points (N = K * n_per_segment, vertices repeated at the joins).
        loss: (N,) accurate loss at those points; grad_norm: (N,) |grad L| there.
        vertex_loss, vertex_grad_norm: (K + 1,) at the vertices; vertex_certified: (K + 1,) |grad| <= grad_tol.
        vertex_subspaces: K + 1 subspace ids (symmetry analyzer) of the vertices; segment_subspaces: K ids of the
            segments' midpoints (the subspace a segment runs in).
        length: Euclidean length of the path; segment_lengths: (K,).
        max_loss: max of ``loss``; certified: max_loss <= loss_tol and every vertex certified.
        snap: distances from the given endpoints to the snapped ones, and the given endpoints' losses.
        loss_tol, grad_tol: the thresholds used.
    """

    vertices: dict
    moves: tuple
    s: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    vertex_loss: np.ndarray
    vertex_grad_norm: np.ndarray
    vertex_certified: np.ndarray
    vertex_subspaces: tuple
    segment_subspaces: tuple
    length: float
    segment_lengths: np.ndarray
    max_loss: float
    certified: bool
    snap: dict = field(default_factory=dict)
    loss_tol: float = 1e-25
    grad_tol: float = 1e-10

    @property
    def n_segments(self) -> int:
        return len(self.moves)

    def summary(self) -> dict:
        """JSON-able numbers: length, max loss, certification, the moves and the subspaces passed."""
        return {"n_segments": self.n_segments, "length": float(self.length), "max_loss": float(self.max_loss),
                "max_grad_norm": float(np.max(self.grad_norm)), "certified": bool(self.certified),
                "vertices_certified": int(np.sum(self.vertex_certified)), "n_vertices": len(self.vertex_certified),
                "max_vertex_grad_norm": float(np.max(self.vertex_grad_norm)), "loss_tol": self.loss_tol,
                "grad_tol": self.grad_tol, "n_dense": int(self.loss.size), "snap": dict(self.snap),
                "moves": list(self.moves), "segment_subspaces": list(self.segment_subspaces),
                "vertex_subspaces": list(self.vertex_subspaces),
                "segment_lengths": [float(x) for x in self.segment_lengths]}


# ------------------------------------------------------------------ structure of a global minimum
@dataclass
class _State:
    """Host-side neuron vectors U (m, D) and output weights a (m,) of a full student parameter set."""

    U: np.ndarray
    a: np.ndarray

    def copy(self) -> _State:
        return _State(self.U.copy(), self.a.copy())


def _neuron_vectors(params: dict, d: int) -> np.ndarray:
    w = np.asarray(params["w"], float)
    return np.concatenate([w, np.asarray(params["b"], float)[:, None]], axis=1) if "b" in params else w


def _to_theta(state: _State, problem, d: int) -> dict:
    full = {"w": state.U[:, :d], "a": state.a}
    if problem.student.bias:
        full["b"] = state.U[:, d]
    return {k: full[k] for k in problem.trainable_shapes}


def global_structure(problem, theta, *, u_tol: float = 1e-3, a_tol: float = 1e-5, c_tol: float = 1e-6):
    """The structure of a global minimum: each neuron's teacher (or zero-output / dead) and factor kappa.

    Args:
        problem: a :class:`landscape.TeacherStudent` with a two-layer student and teacher, output weights trained.
        theta: trainable parameter dict near a global minimum.
        u_tol: relative distance below which a neuron's direction matches a teacher neuron's; a neuron of norm
            <= u_tol max(1, max|u|) is dead when sigma(0) = 0.
        a_tol: |a_i| <= a_tol max(1, |c|_max) marks an unmatched neuron zero-output.
        c_tol: tolerance of the group sums sum kappa_i a_i = c_t (relative to max(1, |c_t|)).

    Returns:
        ``(teacher_of, kappa, snapped)``: (m,) int (teacher index, -1 zero-output, -2 dead), (m,) float factors,
        and the snapped exact manifold point as a trainable dict.

    Raises:
        NotOnManifold: naming the neuron or teacher neuron that does not fit, for points that are not global minima.
    """
    act = problem.student.activation
    d = problem.student.input_dim
    tp = problem.teacher_params
    if "layers" in tp:
        raise NotOnManifold("zero-loss paths need a two-layer teacher")
    full = {k: np.asarray(v, float) for k, v in problem.full_params(theta).items()}
    U, a = _neuron_vectors(full, d), full["a"].copy()
    V, c = _neuron_vectors({k: np.asarray(v, float) for k, v in tp.items()}, d), np.asarray(tp["a"], float)
    m, r = U.shape[0], V.shape[0]
    p = act.homogeneity
    signs = (1.0, -1.0) if act.odd else (1.0,)
    nu = np.linalg.norm(U, axis=1)
    scale_u = max(1.0, float(nu.max(initial=0.0)))
    teacher_of = np.full(m, -1)
    kappa = np.zeros(m)
    snapped = U.copy()
    for i in range(m):
        if act.zero_at_zero and nu[i] <= u_tol * scale_u:
            teacher_of[i], snapped[i] = -2, 0.0
            continue
        best = (np.inf, -1, 0.0)
        for t in range(r):
            for sg in signs:
                vt = sg * V[t]
                if p is not None:  # same direction up to a positive factor
                    s = float(U[i] @ vt) / float(vt @ vt)
                    err = np.linalg.norm(U[i] - s * vt) / max(nu[i], 1e-300) if s > 0 else np.inf
                else:
                    s, err = 1.0, np.linalg.norm(U[i] - vt) / max(1.0, np.linalg.norm(vt))
                if err < best[0]:
                    best = (err, t, sg * s)
        err, t, s = best
        if err <= u_tol:
            if p is not None and abs(abs(s) - 1.0) <= 1e-9:
                s = float(np.sign(s))  # the teacher neuron itself (up to rounding): snap exactly onto it
            teacher_of[i] = t
            kappa[i] = np.sign(s) * abs(s) ** (p if p is not None else 0.0)
            snapped[i] = s * V[t]
        elif abs(a[i]) <= a_tol * max(1.0, float(np.max(np.abs(c)))):
            teacher_of[i] = -1
        else:
            raise NotOnManifold(f"neuron {i} matches no teacher neuron (relative distance {err:.2e} > {u_tol:g}) "
                                f"and its output weight {a[i]:.3e} is not zero: the point is not a global minimum")
    a_new = np.where(teacher_of == -1, 0.0, a)
    for t in range(r):
        members = np.flatnonzero(teacher_of == t)
        if members.size == 0:
            raise NotOnManifold(f"teacher neuron {t} is realised by no student neuron: not a global minimum")
        total = float(kappa[members] @ a_new[members])
        if abs(total - c[t]) > c_tol * max(1.0, abs(c[t])):
            raise NotOnManifold(f"the neurons {members.tolist()} realise teacher neuron {t} with output "
                                f"{total:.6g} instead of {c[t]:.6g}: not a global minimum")
        rep = members[np.argmax(np.abs(kappa[members]))]
        a_new[rep] += (c[t] - total) / kappa[rep]
    return teacher_of, kappa, _to_theta(_State(snapped, a_new), problem, d)


# ------------------------------------------------------------------ the moves
class _Builder:
    """Records vertices and moves of a piecewise-linear path (host side)."""

    def __init__(self, state: _State, V: np.ndarray, c: np.ndarray, teacher_of, kappa, names=None):
        self.names = names or {t: t for t in range(len(c))}  # teacher neuron -> number shown in move strings
        self.state = state.copy()
        self.V, self.c = V, c
        self.teacher_of = np.asarray(teacher_of).copy()
        self.kappa = np.asarray(kappa, float).copy()
        self.vertices = [state.copy()]
        self.moves: list[str] = []

    def _push(self, what: str) -> None:
        last = self.vertices[-1]
        if np.array_equal(last.U, self.state.U) and np.array_equal(last.a, self.state.a):
            return  # nothing moved
        self.vertices.append(self.state.copy())
        self.moves.append(what)

    def release_dead(self) -> None:
        dead = np.flatnonzero(self.teacher_of == -2)
        if dead.size:
            self.state.a[dead] = 0.0
            self.teacher_of[dead] = -1
            self._push(f"dead neurons {dead.tolist()}: output weights -> 0 (u = 0)")

    def free(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.teacher_of == -1)]

    def move_zero(self, j: int, target: np.ndarray, why: str) -> None:
        self.state.U[j] = target
        self._push(f"zero-output neuron {j} -> {why}")

    def transfer(self, t: int, weights: dict, why: str) -> None:
        """Split-ratio move of group t to output weights ``weights`` (neuron -> a) keeping sum kappa a = c_t."""
        for i, w in weights.items():
            self.state.a[i] = w
        self._push(why)

    def consolidate(self, t: int) -> int:
        """Gather group t's output onto one holder (kappa = 1 if a member has it); returns the holder."""
        members = np.flatnonzero(self.teacher_of == t)
        if members.size == 1:  # nothing to gather (the snap already made kappa a = c_t)
            return int(members[0])
        exact = [i for i in members if self.kappa[i] == 1.0 and np.array_equal(self.state.U[i], self.V[t])]
        rep = int(exact[0]) if exact else int(members[np.argmax(np.abs(self.kappa[members]))])
        weights = {int(i): 0.0 for i in members}
        weights[rep] = float(self.c[t] / self.kappa[rep])
        self.transfer(t, weights, f"split ratio of teacher neuron t{self.names[t]}: output of {members.tolist()} "
                                  f"-> neuron {rep}")
        for i in members:
            if i != rep:
                self.teacher_of[i], self.kappa[i] = -1, 0.0
        return rep

    def relocate(self, t: int, i: int, j: int) -> None:
        """Teacher neuron t from holder i to the free neuron j: zero-output move, then split-ratio move."""
        self.move_zero(j, self.V[t], f"teacher neuron t{self.names[t]}'s incoming vector")
        self.teacher_of[j], self.kappa[j] = t, 1.0
        self.transfer(t, {i: 0.0, j: float(self.c[t])},
                      f"split ratio of teacher neuron t{self.names[t]}: neuron {i} -> neuron {j}")
        self.teacher_of[i], self.kappa[i] = -1, 0.0

    def canonicalise(self) -> dict:
        """Bring the state to a canonical vertex; returns the holder of every teacher neuron."""
        self.release_dead()
        holders = {t: self.consolidate(t) for t in range(len(self.c))}
        for t, i in holders.items():
            if not (self.kappa[i] == 1.0 and np.array_equal(self.state.U[i], self.V[t])):
                j = self.free()[0]  # m >= r* + 1: a free neuron exists once groups are consolidated
                self.relocate(t, i, j)
                holders[t] = j
        return holders


def canonical_vertex_path(problem, theta, *, tolerances: dict | None = None, names: dict | None = None):
    """Vertices and moves from the snapped global minimum near ``theta`` to a canonical vertex.

    Returns:
        ``(builder, holders, snapped)``: the path builder (``.vertices``: list of (U, a) states, ``.moves``: move
        strings), dict teacher neuron -> holder neuron, and the snapped trainable dict.
    """
    teacher_of, kappa, snapped = global_structure(problem, theta, **(tolerances or {}))
    d = problem.student.input_dim
    full = {k: np.asarray(v, float) for k, v in problem.full_params(snapped).items()}
    tp = {k: np.asarray(v, float) for k, v in problem.teacher_params.items()}
    b = _Builder(_State(_neuron_vectors(full, d), full["a"]), _neuron_vectors(tp, d), tp["a"], teacher_of, kappa,
                 names)
    holders = b.canonicalise()
    return b, holders, snapped


def _check_problem(problem) -> None:
    from ...problem.networks import TwoLayer

    if not isinstance(problem.student, TwoLayer):
        raise ValueError("zero-loss paths need a two-layer student")
    if "a" not in problem.trainable_shapes:
        raise ValueError("zero-loss paths move output weights: they need trained output weights "
                         "(student.train_output_weights = true)")


@persistent_jit
def _dense_eval(problem, thetas):
    def one(th):
        return problem.loss_accurate(th), jnp.linalg.norm(ravel_pytree(jax.grad(problem.loss)(th))[0])

    return jax.vmap(one)(thetas)


EVAL_BLOCK = 256
"""Points per vmapped evaluation call: every path of a problem reuses one compilation (the last block is padded)."""


def _evaluate(problem, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """Accurate loss and gradient norm at N stacked points, in blocks of :data:`EVAL_BLOCK` (one compilation)."""
    n = next(iter(batch.values())).shape[0]
    losses, norms = [], []
    for start in range(0, n, EVAL_BLOCK):
        block = {k: v[start:start + EVAL_BLOCK] for k, v in batch.items()}
        pad = EVAL_BLOCK - block[next(iter(block))].shape[0]
        if pad:
            block = {k: jnp.concatenate([v, jnp.repeat(v[-1:], pad, axis=0)]) for k, v in block.items()}
        loss, gn = _dense_eval(problem, block)
        losses.append(np.asarray(loss, float)[:EVAL_BLOCK - pad])
        norms.append(np.asarray(gn, float)[:EVAL_BLOCK - pad])
    return np.concatenate(losses), np.concatenate(norms)


def zero_loss_path(problem, theta_a, theta_b, *, n_per_segment: int = 65, loss_tol: float = 1e-25,
                   grad_tol: float = 1e-10, tolerances: dict | None = None) -> ZeroLossPath:
    """A certified piecewise-linear path of zero loss between two global minima; see the module docstring.

    Every segment keeps the network function equal to the teacher's (split-ratio, zero-output and dead-neuron
    moves), so the loss along it is zero up to rounding. The path is evaluated densely (``n_per_segment`` points
    per segment, one vmapped call) with the accurate loss, and the gradient norm is measured at every vertex.

    Args:
        problem: a :class:`landscape.TeacherStudent` with two-layer student and teacher and trained output
            weights (population or sample loss; the certification uses ``loss_accurate``).
        theta_a, theta_b: trainable parameter dicts near two global minima (e.g. stored end points).
        n_per_segment: points per segment, endpoints included.
        loss_tol: certification threshold on the dense accurate loss.
        grad_tol: certification threshold on the gradient norm at the vertices.
        tolerances: keyword arguments of :func:`global_structure` (u_tol, a_tol, c_tol).

    Returns:
        :class:`ZeroLossPath`.

    Raises:
        NotOnManifold: if an endpoint is not a global minimum of the symmetry-induced manifold, or if the two
            minima are isolated (m = r* with different holder assignments: no zero-loss path exists; use a
            nudged elastic band, :func:`landscape.analysis.paths.neb`).

    Example:
        >>> import jax.numpy as jnp, landscape as ls
        >>> from landscape.analysis.paths import zero_loss_path
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=2, width=2), ls.TwoLayer(width=3))
        >>> a = {"w": jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "a": jnp.array([1.0, 1.0, 0.0])}
        >>> b = {"w": jnp.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), "a": jnp.array([1.0, 1.0, 0.0])}
        >>> path = zero_loss_path(problem, a, b, n_per_segment=9)  # doctest: +SKIP
        >>> path.certified, path.n_segments  # doctest: +SKIP
        (True, 7)

    References:
        Şimşek et al., ICML 2021 (arXiv:2105.12221), README science section 1.
    """
    _check_problem(problem)
    n_per_segment = int(n_per_segment)
    if n_per_segment < 2:
        raise ValueError(f"n_per_segment = {n_per_segment} must be >= 2")
    d = problem.student.input_dim
    m, r = problem.student.width, problem.teacher.width
    tol = Tolerances()
    teacher = teacher_reduction(problem, tol)
    # teacher neurons are named t0, t1, ... in the symmetry analyzer's canonical order, as in the subspace ids
    names = {int(t): k for k, g in enumerate(teacher.groups) for t in g} if teacher is not None else None
    ba, holders_a, snap_a = canonical_vertex_path(problem, theta_a, tolerances=tolerances, names=names)
    bb, holders_b, snap_b = canonical_vertex_path(problem, theta_b, tolerances=tolerances, names=names)
    # connect the canonical vertices: relocations through free neurons (ba continues from its canonical vertex)
    holder = dict(holders_a)
    target = dict(holders_b)
    if m == r and holder != target:
        raise NotOnManifold(f"a width-{m} student of a width-{r} teacher has isolated global minima: no zero-loss "
                            "path joins different permutations; use the nudged elastic band (method neb)")
    guard = 0
    while holder != target:
        guard += 1
        if guard > 4 * (r + m):
            raise RuntimeError("relocation did not terminate")  # cannot happen: each step fixes or frees a holder
        occupied = set(holder.values())
        ready = [t for t in holder if holder[t] != target[t] and target[t] not in occupied]
        if ready:
            t = ready[0]
            ba.relocate(t, holder[t], target[t])
            holder[t] = target[t]
        else:  # every wrong holder's target is occupied (cycles): park one teacher neuron in a free neuron
            t = next(t for t in holder if holder[t] != target[t])
            j = ba.free()[0]  # never a target of a wrong holder here: those targets are all occupied
            ba.relocate(t, holder[t], j)
            holder[t] = j
    # zero-output neurons to B's canonical positions, then B's canonicalisation backwards
    for j in ba.free():
        ba.move_zero(j, bb.state.U[j], "its position in the target's canonical vertex")
    if not (np.array_equal(ba.state.U, bb.state.U) and np.array_equal(ba.state.a, bb.state.a)):
        raise RuntimeError("canonical vertices differ after relocation")  # a bug if it happens
    states = ba.vertices + bb.vertices[-2::-1]
    moves = ba.moves + [f"(reversed) {mv}" for mv in bb.moves[::-1]]
    thetas = [_to_theta(st, problem, d) for st in states]
    verts = {k: np.stack([t[k] for t in thetas]) for k in thetas[0]}
    K = len(moves)
    # dense points (K segments x n_per_segment, endpoints included), the vertices and the given endpoints: one call
    ts = np.linspace(0.0, 1.0, n_per_segment)

    def lerp(v):
        tt = ts.reshape((1, -1) + (1,) * (v.ndim - 1))
        return ((1.0 - tt) * v[:-1, None] + tt * v[1:, None]).reshape((-1,) + v.shape[1:])

    ends = {k: np.stack([np.asarray(theta_a[k], float), np.asarray(theta_b[k], float)]) for k in verts}
    batch = {k: jnp.asarray(np.concatenate([lerp(v), v, ends[k]])) for k, v in verts.items()}
    all_loss, all_gn = _evaluate(problem, batch)
    nd = K * n_per_segment
    loss, gn = all_loss[:nd], all_gn[:nd]
    vloss, vgn = all_loss[nd:nd + K + 1], all_gn[nd:nd + K + 1]
    end_loss, end_gn = all_loss[nd + K + 1:], all_gn[nd + K + 1:]
    flat = np.concatenate([verts[k].reshape(K + 1, -1) for k in sorted(verts)], axis=1)
    seg_len = np.linalg.norm(np.diff(flat, axis=0), axis=1)
    s = (np.concatenate([[0.0], np.cumsum(seg_len)])[:-1, None] + ts[None, :] * seg_len[:, None]).ravel()
    if K == 0:  # both end points snap to the same manifold point: the path is that point
        loss, gn, s = vloss, vgn, np.zeros(1)
    # subspaces: symmetry analyzer's identification of every vertex and segment midpoint

    def label(theta, loss_value):
        red = reduce_two_layer(problem.full_params(theta), problem.student.activation, x=problem.x, tol=tol)
        return identify(red, loss=float(loss_value), teacher=teacher, global_loss_tol=loss_tol).subspace_id

    vsub = tuple(label(t, lv) for t, lv in zip(thetas, vloss, strict=True))
    mids = [{k: 0.5 * (verts[k][i] + verts[k][i + 1]) for k in verts} for i in range(K)]
    msub = tuple(label(t, loss[i * n_per_segment + n_per_segment // 2]) for i, t in enumerate(mids))

    def dist(x, y):
        return float(np.sqrt(sum(np.sum((np.asarray(x[k], float) - np.asarray(y[k], float)) ** 2) for k in x)))

    snap = {"from_distance": dist(theta_a, snap_a), "to_distance": dist(theta_b, snap_b),
            "from_loss": float(end_loss[0]), "to_loss": float(end_loss[1]), "from_grad_norm": float(end_gn[0]),
            "to_grad_norm": float(end_gn[1])}
    vcert = np.isfinite(vgn) & (vgn <= grad_tol)
    max_loss = float(np.max(loss))
    return ZeroLossPath(vertices=verts, moves=tuple(moves), s=s, loss=loss, grad_norm=gn, vertex_loss=vloss,
                        vertex_grad_norm=vgn, vertex_certified=vcert, vertex_subspaces=vsub, segment_subspaces=msub,
                        length=float(seg_len.sum()), segment_lengths=seg_len, max_loss=max_loss,
                        certified=bool(np.isfinite(max_loss) and max_loss <= loss_tol and vcert.all()), snap=snap,
                        loss_tol=float(loss_tol), grad_tol=float(grad_tol))
