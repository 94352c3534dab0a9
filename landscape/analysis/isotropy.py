"""Isotropy subgroups in S_k x S_d of two-layer ReLU students of the orthonormal teacher (README science section 2).

Setting (Safran & Shamir 2018; Arjevani & Field 2021): x ~ N(0, I_d), teacher sum_i sigma(e_i . x) (V = I_d, unit
output weights), student sum_j a_j sigma(w_j . x), W in R^{k x d}. The loss is invariant under

    (pi, rho) . W = P_pi W P_rho^T,   i.e. W'[pi(i), rho(j)] = W[i, j],   (pi, rho) in S_k x S_d,

(student neurons permuted by pi; input coordinates permuted by rho, which permutes the teacher's neurons among
themselves), with a permuted by pi when the output weights are trained. The isotropy subgroup of W is
{(pi, rho): (pi, rho) . W = W}; Arjevani & Field show that spurious minima come in families whose isotropy is large,
e.g. Delta(S_{d-1} x S_1) (the diagonal copy, pi = rho, of S_{d-1} x S_1 in S_d x S_d).

How it is computed (exact, for the tolerance stated):

1. entries of W (and of a, if trained) are quantised into labels: sorted values merge while consecutive gaps are
   <= ``tol`` (:func:`quantise`);
2. an automorphism is a pair of permutations of rows and columns preserving the label matrix (and row labels of a);
   colour refinement (1-dimensional Weisfeiler-Leman on the bipartite row/column graph) gives the equitable
   partition, and individualisation-refinement with backtracking finds automorphisms or proves there is none
   (the search nauty does, McKay & Piperno 2014);
3. the order comes from a stabiliser chain: |G| = prod_l |orbit of b_l under G_(b_1..b_{l-1})|, each orbit found
   by testing every candidate of the base point's cell (pruned by the orbits of the generators found so far);
   the automorphisms found generate G;
4. the name: orbits of G on rows and columns; a row orbit R and a column orbit C of equal size p are linked when G
   acts on R x C with p orbits' worth of pairs (pi = rho on them), Delta S_p; the name is accepted only when the
   product of the factorials equals |G| (otherwise ``"order N"``).

:func:`isotropy` gives a :class:`Isotropy` (order, generators, name, orbits); :func:`equivalent` decides whether
two points are in one S_k x S_d orbit (and gives the pair of permutations); :class:`IsotropyAnalyzer` stores
``isotropy_order`` and ``isotropy_name`` per point. Host code (numpy), fast for k, d up to ~100.

Example:
    >>> import numpy as np
    >>> from landscape.analysis.isotropy import isotropy
    >>> iso = isotropy(np.eye(4))  # the global minimum W = I_4
    >>> iso.order, iso.name
    (24, 'Δ(S_4)')
    >>> w = np.eye(4) * 2.0 + 0.1; w[3, 3] = -0.5   # one distinguished neuron/coordinate
    >>> isotropy(w).name
    'Δ(S_3 × S_1)'

References:
    Arjevani & Field, `Analytic Study of Families of Spurious Minima in Two-Layer ReLU Neural Networks: A Tale of
    Symmetry II <https://arxiv.org/abs/2107.10370>`_, NeurIPS 2021.

    McKay & Piperno, Practical graph isomorphism, II, J. Symbolic Computation 60, 2014.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .analyzer import AbstractAnalyzer, Point

__all__ = ["ISOTROPY_TOL", "Isotropy", "isotropy", "equivalent", "orbit_key", "quantise", "pair_orbits", "has_symmetry",
           "IsotropyAnalyzer"]

ISOTROPY_TOL = 1.0e-6
"""Default label tolerance: entries within 1e-6 (absolute, in units of max(1, max|W|)) are equal."""


def quantise(*mats, tol: float = ISOTROPY_TOL) -> list[np.ndarray]:
    """Integer labels for the entries of one or more arrays, merged jointly: consecutive sorted values within
    ``tol * max(1, max|x|)`` share a label (so equal labels across arrays mean equal values)."""
    flat = np.concatenate([np.ravel(np.asarray(m, float)) for m in mats])
    if flat.size == 0:
        return [np.zeros(np.shape(m), int) for m in mats]
    scale = max(1.0, float(np.max(np.abs(flat))))
    order = np.argsort(flat, kind="stable")
    gaps = np.diff(flat[order]) > tol * scale
    labels = np.empty(flat.size, int)
    labels[order] = np.concatenate([[0], np.cumsum(gaps)])
    out, start = [], 0
    for m in mats:
        n = int(np.size(m))
        out.append(labels[start:start + n].reshape(np.shape(m)))
        start += n
    return out


def _mix(x):
    """splitmix64 of uint64 arrays: a fixed pseudo-random map, so a sum of mixes hashes a multiset."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _relabel(*hashes):
    """Common integer ids 0..n-1 for uint64 hashes of several sides (equal hash, equal id)."""
    _, inv = np.unique(np.concatenate(hashes), return_inverse=True)
    inv = np.ravel(inv)
    out, start = [], 0
    for h in hashes:
        out.append(inv[start:start + len(h)])
        start += len(h)
    return out


def _refine(lab_a, lab_b, ra, ca, rb, cb):
    """Joint colour refinement of two labelled bipartite graphs; returns refined colours or None if they differ.

    Row i's new colour: (old colour, multiset of (label, column colour)); columns likewise. The multiset is hashed
    as a sum of 64-bit mixes (collisions ~ n^2 / 2^64); colour ids are shared by both sides, so an isomorphism must
    map colour to colour.
    """
    with np.errstate(over="ignore"):
        while True:
            nc = np.uint64(int(max(ca.max(initial=0), cb.max(initial=0))) + 1)
            nr = np.uint64(int(max(ra.max(initial=0), rb.max(initial=0))) + 1)
            row_h = [_mix(np.uint64(2) * (lab.astype(np.uint64) * nc + c.astype(np.uint64)[None, :])).sum(axis=1)
                     + _mix(np.uint64(2) * r.astype(np.uint64) + np.uint64(1))
                     for lab, r, c in ((lab_a, ra, ca), (lab_b, rb, cb))]
            col_h = [_mix(np.uint64(2) * (lab.T.astype(np.uint64) * nr + r.astype(np.uint64)[None, :])).sum(axis=1)
                     + _mix(np.uint64(2) * c.astype(np.uint64) + np.uint64(1))
                     for lab, r, c in ((lab_a, ra, ca), (lab_b, rb, cb))]
            ra2, rb2 = _relabel(*row_h)
            ca2, cb2 = _relabel(*col_h)
            nr2, nc2 = int(ra2.max(initial=-1)) + 1, int(ca2.max(initial=-1)) + 1
            if not (np.array_equal(np.bincount(ra2, minlength=nr2), np.bincount(rb2, minlength=nr2))
                    and np.array_equal(np.bincount(ca2, minlength=nc2), np.bincount(cb2, minlength=nc2))):
                return None
            if nr2 == len(np.unique(ra)) and nc2 == len(np.unique(ca)):
                return ra2, ca2, rb2, cb2  # stable: refinement only splits cells
            ra, ca, rb, cb = ra2, ca2, rb2, cb2


def _first_open_cell(r, c):
    """(axis, colour) of the first non-singleton cell, rows before columns, smallest cell first; None if discrete."""
    best = None
    for axis, col in ((0, r), (1, c)):
        counts = np.bincount(col)
        for colour in np.flatnonzero(counts > 1):
            if best is None or counts[colour] < best[2]:
                best = (axis, int(colour), int(counts[colour]))
    return None if best is None else best[:2]


def _individualise(r, c, axis, idx):
    r, c = r.copy(), c.copy()
    if axis == 0:
        r[idx] = r.max() + 1  # a fresh colour, the same on both sides (their colour sets agree)
    else:
        c[idx] = c.max() + 1
    return r, c


def _search(lab_a, lab_b, ra, ca, rb, cb, row_a, row_b, budget):
    """One isomorphism (pi, rho) mapping graph a onto graph b that respects the colours, or None.

    ``lab_b[pi[i], rho[j]] == lab_a[i, j]`` and ``row_b[pi[i]] == row_a[i]``. Depth-first individualisation:
    after refinement, the first open cell's first element on side a is paired with each element of the same cell
    on side b.
    """
    res = _refine(lab_a, lab_b, ra, ca, rb, cb)
    if res is None:
        return None
    ra, ca, rb, cb = res
    cell = _first_open_cell(ra, ca)
    if cell is None:
        pi = np.empty(len(ra), int)
        rho = np.empty(len(ca), int)
        pi[np.argsort(ra)] = np.argsort(rb)
        rho[np.argsort(ca)] = np.argsort(cb)
        if np.array_equal(lab_b[np.ix_(pi, rho)], lab_a) and np.array_equal(row_b[pi], row_a):
            return pi, rho
        return None
    axis, colour = cell
    col_a, col_b = (ra, rb) if axis == 0 else (ca, cb)
    x = int(np.flatnonzero(col_a == colour)[0])
    ra_x, ca_x = _individualise(ra, ca, axis, x)
    for y in np.flatnonzero(col_b == colour):
        budget[0] -= 1
        if budget[0] < 0:
            raise RuntimeError("isotropy search exceeded its budget (a highly regular point); raise the budget")
        rb_y, cb_y = _individualise(rb, cb, axis, int(y))
        found = _search(lab_a, lab_b, ra_x, ca_x, rb_y, cb_y, row_a, row_b, budget)
        if found is not None:
            return found
    return None


def _prepare(w, a, tol):
    w = np.asarray(w, float)
    if a is None:
        (lab,) = quantise(w, tol=tol)
        row = np.zeros(w.shape[0], int)
    else:
        lab, row = quantise(w, np.asarray(a, float), tol=tol)
    return lab, row


@dataclass(frozen=True)
class Isotropy:
    """The isotropy subgroup G of a point in S_k x S_d.

    Attributes:
        order: |G| (a Python int; exact).
        generators: list of (pi, rho) integer arrays with (pi, rho) . W = W; they generate G.
        name: e.g. ``"Δ(S_5 × S_1)"``, or ``"order N"`` when G is not a recognised product.
        row_orbits, col_orbits: orbits of G on student neurons and on input coordinates (lists of index arrays).
        tol: the label tolerance used.
    """

    order: int
    generators: list = field(repr=False)
    name: str
    row_orbits: list = field(repr=False)
    col_orbits: list = field(repr=False)
    tol: float = ISOTROPY_TOL


def _orbits(n: int, perms) -> list[np.ndarray]:
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for p in perms:
        for i in range(n):
            a, b = find(i), find(int(p[i]))
            if a != b:
                parent[max(a, b)] = min(a, b)
    roots = np.asarray([find(i) for i in range(n)])
    return [np.flatnonzero(roots == r) for r in np.unique(roots)]


def _automorphism_group(lab, row, budget: int):
    """(order, generators) of the colour-preserving automorphisms of one labelled matrix (stabiliser chain).

    The base b_1, b_2, ... is the first element of the first open cell along one individualisation-refinement path
    down to a discrete partition. Levels are then processed from the deepest up (as nauty does): the automorphisms
    found at deeper levels fix b_1..b_{l-1}, so they prune level l, and the orbit of b_l under G_(b_1..b_{l-1}) is
    exact once every candidate of its cell is either in it or refuted by a search.
    """
    k, d = lab.shape
    fixed_r, fixed_c = _refine(lab, lab, row.copy(), np.zeros(d, int), row.copy(), np.zeros(d, int))[:2]
    levels = []  # (partition before individualising, axis, base point, cell members)
    while (cell := _first_open_cell(fixed_r, fixed_c)) is not None:
        axis, colour = cell
        members = np.flatnonzero((fixed_r if axis == 0 else fixed_c) == colour)
        levels.append((fixed_r, fixed_c, axis, int(members[0]), members))
        fixed_r, fixed_c = _individualise(fixed_r, fixed_c, axis, int(members[0]))
        fixed_r, fixed_c = _refine(lab, lab, fixed_r, fixed_c, fixed_r, fixed_c)[:2]
    gens: list[tuple[np.ndarray, np.ndarray]] = []
    order = 1
    counter = [budget]
    for part_r, part_c, axis, x, members in reversed(levels):
        n_axis = k if axis == 0 else d

        def orbit_of_x(n_axis=n_axis, axis=axis, x=x):
            return {int(i) for o in _orbits(n_axis, [g[axis] for g in gens]) if x in o for i in o}

        orbit = orbit_of_x()
        ra_x, ca_x = _individualise(part_r, part_c, axis, x)
        for y in members:
            y = int(y)
            if y in orbit:
                continue
            rb, cb = _individualise(part_r, part_c, axis, y)
            found = _search(lab, lab, ra_x, ca_x, rb, cb, row, row, counter)
            if found is not None:
                gens.append(found)
                orbit = orbit_of_x()
        order *= len(orbit)
    return order, gens


def pair_orbits(shape, generators) -> np.ndarray:
    """Orbit ids (k, d) of the entries (i, j) under (pi, rho): (i, j) -> (pi(i), rho(j)).

    The fixed-point space of G is the set of matrices constant on these orbits; averaging W over each orbit is the
    orthogonal projection onto it.
    """
    k, d = shape
    perms = [(pi[:, None] * d + rho[None, :]).ravel() for pi, rho in generators]
    ids = np.empty(k * d, int)
    for n, o in enumerate(_orbits(k * d, perms)):
        ids[o] = n
    return ids.reshape(k, d)


def _linked(r_orbit, c_orbit, generators) -> bool:
    """Whether G acts on R x C (|R| = |C| = p >= 1) with a diagonal orbit of exactly p pairs (pi = rho there)."""
    if len(r_orbit) != len(c_orbit):
        return False
    if len(r_orbit) == 1:
        return True
    k = max(int(max(g[0].max() for g in generators)), int(r_orbit.max())) + 1
    d = max(int(max(g[1].max() for g in generators)), int(c_orbit.max())) + 1
    ids = pair_orbits((k, d), generators)[np.ix_(r_orbit, c_orbit)]
    sizes = np.bincount(ids.ravel())
    sizes = sizes[sizes > 0]
    return bool(np.min(sizes) == len(r_orbit))


def _name(order: int, row_orbits, col_orbits, generators) -> str:
    """Δ(S_p x ...) x S_q ... from the orbits, accepted only if the factorials multiply to |G|."""
    if order == 1:
        return "1"
    rows = sorted(row_orbits, key=len, reverse=True)
    cols = sorted(col_orbits, key=len, reverse=True)
    linked, used = [], set()
    free_rows = []
    for r in rows:
        partner = next((ci for ci, c in enumerate(cols) if ci not in used and generators
                        and _linked(r, c, generators)), None)
        if partner is None:
            free_rows.append(len(r))
        else:
            used.add(partner)
            linked.append(len(r))
    free_cols = [len(c) for ci, c in enumerate(cols) if ci not in used]
    expected = math.prod(math.factorial(p) for p in linked + free_rows + free_cols)
    if expected != order:
        return f"order {order}"
    parts = []
    if linked:
        parts.append("Δ(" + " × ".join(f"S_{p}" for p in linked) + ")")
    parts += [f"S_{p}(rows)" for p in free_rows if p > 1]
    parts += [f"S_{p}(cols)" for p in free_cols if p > 1]
    return " × ".join(parts) if parts else "1"


def isotropy(w, a=None, *, tol: float = ISOTROPY_TOL, budget: int = 200_000) -> Isotropy:
    """The isotropy subgroup of W (and trained output weights a) in S_k x S_d; see the module docstring.

    Args:
        w: (k, d) student weights.
        a: (k,) trained output weights, or None when they are frozen and equal.
        tol: label tolerance (entries within tol * max(1, max|W|) are equal).
        budget: cap on search nodes (a RuntimeError beyond it).

    Returns:
        :class:`Isotropy`.

    Example:
        >>> import numpy as np
        >>> from landscape.analysis.isotropy import isotropy
        >>> iso = isotropy(np.zeros((3, 2)))  # the origin: every (pi, rho)
        >>> iso.order, iso.name
        (12, 'S_3(rows) × S_2(cols)')
    """
    lab, row = _prepare(w, a, tol)
    order, gens = _automorphism_group(lab, row, budget)
    k, d = lab.shape
    row_orbits = _orbits(k, [g[0] for g in gens])
    col_orbits = _orbits(d, [g[1] for g in gens])
    return Isotropy(order=order, generators=gens, name=_name(order, row_orbits, col_orbits, gens),
                    row_orbits=row_orbits, col_orbits=col_orbits, tol=tol)


def orbit_key(w, a=None, *, tol: float = ISOTROPY_TOL) -> bytes:
    """A key that two points share only if they lie in one S_k x S_d orbit (for the labels at ``tol``).

    The label matrix (with a's labels as a first column, moved with the rows) has its rows and then its columns
    sorted, alternately, until neither moves: by their invariants first (a row's label of a and its labels as a
    sorted multiset; a column's likewise), then lexicographically. The result is a matrix (pi, rho) . W of W's
    labels. Equal keys therefore mean one orbit, conjugate isotropy groups, and the same order and name; points of
    one orbit may still get different keys (this is no canonical form), and are then computed apart.
    :class:`IsotropyAnalyzer` computes each key's isotropy once per batch: most end points of a census are global
    minima (permutation matrices) or members of a few spurious families.
    """
    lab, row = _prepare(w, a, tol)
    row_sig = np.concatenate([row[:, None], np.sort(lab, axis=1)], axis=1)  # invariants: sort by them first
    col_sig = np.sort(lab, axis=0)
    for _ in range(16):
        rows = np.lexsort(np.concatenate([row_sig, lab], axis=1).T[::-1])
        lab, row_sig = lab[rows], row_sig[rows]
        cols = np.lexsort(np.concatenate([col_sig, lab], axis=0)[::-1])
        lab, col_sig = lab[:, cols], col_sig[:, cols]
        if np.array_equal(rows, np.arange(len(rows))) and np.array_equal(cols, np.arange(len(cols))):
            break
    m = np.concatenate([row_sig[:, :1], lab], axis=1)
    return np.asarray(m.shape, np.int64).tobytes() + np.ascontiguousarray(m, np.int64).tobytes()


def equivalent(w1, w2, a1=None, a2=None, *, tol: float = ISOTROPY_TOL, budget: int = 200_000):
    """(pi, rho) with P_pi W1 P_rho^T = W2 (entries within tol, a permuted alike), or None: same S_k x S_d orbit?

    Labels are quantised jointly over both points, an isomorphism is searched as in :func:`isotropy`, and the
    result is checked on the values: max |W1[i, j] - W2[pi(i), rho(j)]| <= tol * max(1, max|W|).

    Example:
        >>> import numpy as np
        >>> from landscape.analysis.isotropy import equivalent
        >>> rng = np.random.default_rng(0); w = rng.normal(size=(3, 4))
        >>> pi, rho = equivalent(w, w[[2, 0, 1]][:, [1, 3, 0, 2]])
        >>> pi.tolist(), rho.tolist()
        ([1, 2, 0], [2, 0, 3, 1])
    """
    w1, w2 = np.asarray(w1, float), np.asarray(w2, float)
    if w1.shape != w2.shape:
        return None
    if a1 is None:
        lab1, lab2 = quantise(w1, w2, tol=tol)
        row1 = row2 = np.zeros(w1.shape[0], int)
    else:
        lab1, lab2, row1, row2 = quantise(w1, w2, np.asarray(a1, float), np.asarray(a2, float), tol=tol)
    r1, r2 = row1.copy(), row2.copy()
    c = np.zeros(w1.shape[1], int)
    found = _search(lab1, lab2, r1, c, r2, c.copy(), row1, row2, [budget])
    if found is None:
        return None
    pi, rho = found
    scale = max(1.0, float(np.max(np.abs(w1))))
    if np.max(np.abs(w2[np.ix_(pi, rho)] - w1)) > tol * scale:
        return None
    return pi, rho


def has_symmetry(problem) -> bool:
    """Whether ``problem`` has the S_k x S_d symmetry: two-layer student without biases, population loss, teacher
    V = I_d (d neurons, equal output weights), student output weights trained or frozen to one common value."""
    from ..problem.networks import TwoLayer

    student = problem.student
    if not isinstance(student, TwoLayer) or student.bias or problem.loss_kind != "population":
        return False
    t = problem.teacher
    if not isinstance(t.network, TwoLayer) or "b" in t.params:
        return False
    try:
        tw, ta = np.asarray(t.params["w"], float), np.asarray(t.params["a"], float)
    except Exception:  # noqa: BLE001  (traced teacher: decide by shape alone is not enough)
        return False
    d = student.input_dim
    if tw.shape != (d, d) or not np.array_equal(tw, np.eye(d)) or not np.all(ta == ta[0]):
        return False
    if "a" in problem.frozen:
        fa = np.asarray(problem.frozen["a"], float)
        return bool(np.all(fa == fa[0]))
    return True


class IsotropyAnalyzer(AbstractAnalyzer):
    """Isotropy of every certified point in S_k x S_d: columns ``isotropy_order`` and ``isotropy_name``.

    Runs on the orthonormal-teacher problems only (:func:`has_symmetry`); ``landscape run`` adds it by default there
    (config name ``"isotropy"``). Host code; orders above 2^63 are stored as -1 with the exact value in the name.

    Args:
        tol: label tolerance (default :data:`ISOTROPY_TOL`).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> from landscape.analysis.isotropy import IsotropyAnalyzer
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=3), ls.TwoLayer(width=3),
        ...                             output_weights="teacher")
        >>> thetas = {"w": jnp.stack([jnp.eye(3), jnp.eye(3)[::-1]])}
        >>> points = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(2),
        ...                   certified=jnp.array([True, True]), finite=jnp.array([True, True]))
        >>> res = ls.run_analyzers([IsotropyAnalyzer()], problem, points)
        >>> res.columns["isotropy_order"].tolist(), res.columns["isotropy_name"].tolist()
        ([6, 6], ['Δ(S_3)', 'Δ(S_3)'])
    """

    tol: float = ISOTROPY_TOL
    name = "isotropy"
    jittable = False
    only_certified = True
    columns = {"isotropy_order": np.int64(-1), "isotropy_name": ""}

    def applies_to(self, problem) -> bool:
        return has_symmetry(problem)

    def __call__(self, problem, point, previous):
        theta = point.theta
        iso = isotropy(np.asarray(theta["w"]), None if "a" not in theta else np.asarray(theta["a"]),
                       tol=float(self.tol))
        order = iso.order if iso.order < 2**63 else -1
        name = iso.name if iso.order < 2**63 or iso.name.startswith("Δ") else f"order {iso.order}"
        return {"isotropy_order": np.int64(order), "isotropy_name": name}

    def call_batch(self, problem, points, previous):
        """Every point, each :func:`orbit_key` searched once: the same columns as ``__call__`` point by point."""
        w = np.asarray(points.theta["w"], float)
        a = None if "a" not in points.theta else np.asarray(points.theta["a"], float)
        done: dict[bytes, object] = {}
        out: list = []
        for i in range(len(w)):
            try:
                key = orbit_key(w[i], None if a is None else a[i], tol=float(self.tol))
                if key not in done:
                    point = Point(theta={k: v[i] for k, v in points.theta.items()}, loss=points.loss[i],
                                  grad_norm=points.grad_norm[i], certified=points.certified[i],
                                  finite=points.finite[i])
                    try:
                        done[key] = self(problem, point, previous)
                    except Exception as err:  # noqa: BLE001  (labelled for this key's points alone)
                        done[key] = err
                out.append(done[key])
            except Exception as err:  # noqa: BLE001
                out.append(err)
        return out
