"""Reduce a two-layer student to its minimal form (README science sections 1 and 5; issue 3, item 1).

For f(x) = sum_j a_j sigma(u_j . x~) with u_j = (w_j, b_j) and x~ = (x, 1) with biases (x~ = x without):

1. zero-output neurons: |a_j| <= a_tol * max(1, max_k |a_k|)  (they contribute nothing; incoming vector free);
2. dead neurons (among the rest): sigma(0) = 0 and |u_j| <= u_tol * max(1, max_k |u_k|) (contribute nothing), or
   for ReLU-type sigma (relu, relu^p) on a finite sample: u_j . x~_n <= 0 for every sample (inactive on the data);
3. the live neurons are mapped to a canonical incoming vector u^_j with sigma(u_j . x~) = kappa_j sigma(u^_j . x~):
   p-homogeneous sigma: u^_j = u_j / |u_j|, kappa_j = |u_j|^p; odd sigma: u^_j = s_j u_j with s_j = sign(c . u_j) for
   a fixed generic c, kappa_j = s_j; otherwise u^_j = u_j, kappa_j = 1;
4. live neurons whose u^ coincide, |u^_i - u^_j| <= u_tol * max(1, |u^_i|, |u^_j|) (single linkage), form a group k
   with reduced neuron (u^_k = mean, renormalised if homogeneous; A_k = sum_{j in k} kappa_j a_j).

The reduced network f_r(x) = sum_k A_k sigma(u^_k . x~) computes the same function. Groups are put in a canonical
order (lexicographic in the rounded (u^_k, A_k), see :mod:`.canonical`). For p = 1 homogeneous activations
(relu, leaky relu) antiparallel groups u^_k = -u^_l are reported in ``opposite`` (relu(z) - relu(-z) = z: a
"balanced" pair, A_k = -A_l, is a linear function whose direction can move); they are not merged further.

Deep MLPs (:func:`reduce_deep`): the same permutation reduction layer by layer (zero-output and coincident neurons
of every hidden layer; outgoing columns of coincident neurons are summed). What is predicted there: one split
ratio per extra member of a duplicated group (n_k - 1 per group) and a free incoming row per zero-output neuron at a
zero-loss point (plus one rescaling per neuron for ReLU). Not predicted: the directions flat to second order only,
dead-unit regions of deep ReLU nets, symmetries mixing layers (e.g. neurons that are duplicated only after a
downstream merge), and any count of subspaces (T and G are two-layer results).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .groups import canonical_sign_vector, neuron_matrix

__all__ = ["Tolerances", "Reduction", "reduce_two_layer", "is_relu_type", "reduce_deep", "DeepReduction"]


@dataclass(frozen=True)
class Tolerances:
    """Explicit, reported tolerances of the reduction and of the labels.

    Attributes:
        a_tol: zero outgoing weight: |a_j| <= a_tol * max(1, max|a|).
        u_tol: coincident canonical incoming vectors: |u^_i - u^_j| <= u_tol * max(1, |u^_i|, |u^_j|); also a
            zero incoming vector (sigma(0) = 0): |u_j| <= u_tol * max(1, max|u|).
        match_tol: a reduced neuron realises a teacher neuron if their (u^, A) differ by at most match_tol (relative).
        label_decimals: decimals of the rounded canonical reduced point hashed into subspace labels.
        cos_tol: a predicted direction counts as explained when its principal cosine with the numerical null space
            is at least 1 - cos_tol.
        u_tol_loose: second merge tolerance, tried only when a point of loss <= sqrt(global_loss_tol) is not
            identified as a global minimum at ``u_tol``: at zero loss the split residual vanishes (A_i = 0), the loss
            is quartic in the spread of a group, and flows approach the split subspaces only like t^(-1/2), so a
            certified point (|grad| ~ spread^3) may still have spreads ~ 1e-2.
    """

    a_tol: float = 1e-5
    u_tol: float = 1e-3
    match_tol: float = 1e-3
    label_decimals: int = 3
    cos_tol: float = 1e-3
    u_tol_loose: float = 3e-2

    def as_dict(self) -> dict:
        return {"a_tol (|a_j| <= a_tol max(1, max|a|))": self.a_tol,
                "u_tol (|u^_i - u^_j| <= u_tol max(1, |u|))": self.u_tol,
                "match_tol (teacher matching, relative)": self.match_tol,
                "label_decimals": self.label_decimals,
                "cos_tol (explained: principal cosine >= 1 - cos_tol)": self.cos_tol,
                "u_tol_loose (near-zero-loss points only)": self.u_tol_loose}


def is_relu_type(activation) -> bool:
    """Whether sigma(z) = 0 for all z <= 0 (relu, relu^p): such neurons can be dead on a region."""
    return activation.name in ("relu", "relu_p")


@dataclass
class Reduction:
    """Result of :func:`reduce_two_layer` for one point (host-side numpy).

    Attributes:
        m: student width; r: reduced width (number of groups); D: incoming dimension d (+1 with bias).
        groups: tuple of tuples of student neuron indices, in canonical group order.
        zero: indices of zero-output neurons; dead: indices of dead neurons.
        group_of: (m,) int, the group of each neuron, -1 zero-output, -2 dead.
        kappa: (m,) sigma(u_j . x~) = kappa_j sigma(u^_k . x~) for live neurons (0 for zero/dead).
        u_hat: (r, D) canonical incoming vectors; A: (r,) reduced outgoing weights.
        reduced: the reduced full parameter dict {"w": (r, d), ["b": (r,)], "a": (r,)}.
        opposite: ((k, l, balanced), ...) antiparallel group pairs for p = 1 homogeneous activations.
        spread: max distance of a member's u^ to its group's u^_k (how tightly groups coincide).
    """

    m: int
    r: int
    D: int
    bias: bool
    groups: tuple
    zero: tuple
    dead: tuple
    group_of: np.ndarray
    kappa: np.ndarray
    u_hat: np.ndarray
    A: np.ndarray
    reduced: dict
    opposite: tuple = ()
    spread: float = 0.0
    odd: bool = False
    tol: Tolerances = field(default_factory=Tolerances)

    @property
    def multiplicities(self) -> tuple:
        """Group sizes n_k in canonical order."""
        return tuple(len(g) for g in self.groups)

    def partition_string(self) -> str:
        """Compact partition, e.g. ``{0,3}{1}{2}|z{4}|d{}``: groups in canonical order, zero-output, dead."""
        s = "".join("{" + ",".join(map(str, g)) + "}" for g in self.groups)
        s += "|z{" + ",".join(map(str, self.zero)) + "}"
        s += "|d{" + ",".join(map(str, self.dead)) + "}"
        if self.opposite:
            s += "|opp" + "".join(f"({k},{l}{',bal' if b else ''})" for k, l, b in self.opposite)
        return s

    def assignment(self) -> tuple:
        """Per student neuron: its canonical group index, ``"z"`` (zero-output) or ``"d"`` (dead)."""
        return tuple("z" if g == -1 else "d" if g == -2 else int(g) for g in self.group_of)


def _union_find(n: int, close: np.ndarray) -> list[list[int]]:
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if close[i, j]:
                parent[find(i)] = find(j)
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(find(i), []).append(i)
    return sorted(comps.values(), key=lambda c: c[0])


def canonical_neuron(u: np.ndarray, activation) -> tuple[np.ndarray, np.ndarray]:
    """(u^, kappa) row-wise for U of shape (m, D): sigma(u . x~) = kappa sigma(u^ . x~) (see module docstring)."""
    u = np.asarray(u, float)
    p = activation.homogeneity
    kappa = np.ones(u.shape[0])
    uh = u.copy()
    if p is not None:
        nrm = np.linalg.norm(u, axis=1)
        safe = np.where(nrm > 0, nrm, 1.0)
        uh = u / safe[:, None]
        kappa = np.where(nrm > 0, nrm**p, 0.0)
    if activation.odd:
        s = np.sign(u @ canonical_sign_vector(u.shape[1]))
        s = np.where(s == 0, 1.0, s)
        uh = uh * s[:, None]
        kappa = kappa * s
    return uh, kappa


def reduce_two_layer(params, activation, *, x=None, tol: Tolerances | None = None) -> Reduction:
    """Reduce one two-layer full parameter dict (see the module docstring).

    Args:
        params: ``{"w": (m, d), ["b": (m,)], "a": (m,)}`` (numpy or jax; converted to float64 numpy).
        activation: the :class:`landscape.problem.activations.Activation`.
        x: (n, d) sample inputs for the finite-sample loss (dead ReLU units), or None for the population loss.
        tol: :class:`Tolerances`.
    Returns:
        :class:`Reduction`.
    """
    from .canonical import order_groups  # local import: canonical uses Reduction

    tol = tol or Tolerances()
    bias = "b" in params
    U = neuron_matrix(params)
    a = np.asarray(params["a"], float)
    m, D = U.shape
    a_ref = max(1.0, float(np.max(np.abs(a)))) if m else 1.0
    u_norm = np.linalg.norm(U, axis=1)
    u_ref = max(1.0, float(np.max(u_norm))) if m else 1.0
    zero = np.abs(a) <= tol.a_tol * a_ref
    dead = np.zeros(m, bool)
    if activation.zero_at_zero:
        dead |= u_norm <= tol.u_tol * u_ref
    if is_relu_type(activation) and x is not None:
        xt = np.asarray(x, float)
        if bias:
            xt = np.concatenate([xt, np.ones((xt.shape[0], 1))], axis=1)
        dead |= np.max(xt @ U.T, axis=0) <= 0.0
    dead &= ~zero
    live = np.flatnonzero(~zero & ~dead)
    uh_all, kappa_all = canonical_neuron(U, activation)
    uh = uh_all[live]
    nrm = np.linalg.norm(uh, axis=1)
    dist = np.linalg.norm(uh[:, None, :] - uh[None, :, :], axis=-1)
    scale = np.maximum(1.0, np.maximum(nrm[:, None], nrm[None, :]))
    comps = _union_find(len(live), dist <= tol.u_tol * scale)
    groups = [[int(live[i]) for i in c] for c in comps]
    u_hat, A, spread = [], [], 0.0
    for g in groups:
        mean = uh_all[g].mean(axis=0)
        if activation.homogeneity is not None:
            mean = mean / max(np.linalg.norm(mean), 1e-300)
        spread = max(spread, float(np.max(np.linalg.norm(uh_all[g] - mean, axis=1))))
        u_hat.append(mean)
        A.append(float(np.sum(kappa_all[g] * a[g])))
    u_hat = np.asarray(u_hat, float).reshape(len(groups), D)
    A = np.asarray(A, float)
    order = order_groups(u_hat, A, tol.label_decimals)
    groups = [tuple(groups[i]) for i in order]
    u_hat, A = u_hat[order], A[order]
    group_of = np.full(m, -1, int)
    group_of[dead] = -2
    kappa = np.zeros(m)
    for k, g in enumerate(groups):
        group_of[list(g)] = k
        kappa[list(g)] = kappa_all[list(g)]
    reduced = {"w": u_hat[:, : D - int(bias)], "a": A}
    if bias:
        reduced["b"] = u_hat[:, -1]
    opposite = []
    if activation.homogeneity == 1.0:
        for k in range(len(groups)):
            for l in range(k + 1, len(groups)):
                if np.linalg.norm(u_hat[k] + u_hat[l]) <= tol.u_tol:
                    bal = abs(A[k] + A[l]) <= tol.a_tol * a_ref
                    opposite.append((k, l, bool(bal)))
    return Reduction(m=m, r=len(groups), D=D, bias=bias, groups=tuple(groups), zero=tuple(np.flatnonzero(zero)),
                     dead=tuple(np.flatnonzero(dead)), group_of=group_of, kappa=kappa, u_hat=u_hat, A=A,
                     reduced=reduced, opposite=tuple(opposite), spread=spread, odd=activation.odd, tol=tol)


@dataclass
class DeepReduction:
    """Layer-by-layer permutation reduction of a deep MLP (see module docstring).

    Attributes:
        widths: original hidden widths; reduced_widths: widths after reduction.
        layers: per hidden layer, (groups, zero) as tuples of neuron indices.
        predicted_dim: split ratios (n_k - 1 summed over groups) + free incoming rows of zero-output neurons
            (counted only when ``residual_zero``) + one rescaling per live neuron for p = 1 homogeneous sigma.
    """

    widths: tuple
    reduced_widths: tuple
    layers: tuple
    predicted_dim: int

    def partition_string(self) -> str:
        return " / ".join("".join("{" + ",".join(map(str, g)) + "}" for g in gs) + "|z{" +
                          ",".join(map(str, z)) + "}" for gs, z in self.layers)


def reduce_deep(params, activation, *, tol: Tolerances | None = None, residual_zero: bool = False) -> DeepReduction:
    """Permutation reduction of an MLP ``{"layers": ({"w", ["b"]}, ...), "a": (n_L,)}`` layer by layer.

    Neurons of layer l are merged when their incoming rows (w, b) coincide (within u_tol, relative); their outgoing
    columns (next layer's w, or a) are summed. A neuron is zero-output when its outgoing column is zero (a_tol).
    Rescaling is not merged (homogeneous rescalings are counted in ``predicted_dim`` only).
    """
    tol = tol or Tolerances()
    layers = [dict(layer) for layer in params["layers"]]
    layers = [{k: np.asarray(v, float) for k, v in layer.items()} for layer in layers]
    a = np.asarray(params["a"], float)
    widths = tuple(layer["w"].shape[0] for layer in layers)
    info, pred, rw = [], 0, []
    idx_maps = [np.arange(n) for n in widths]
    for li in range(len(layers)):
        layer = layers[li]
        out = a[None, :] if li == len(layers) - 1 else layers[li + 1]["w"]  # (n_out, n_l)
        U = layer["w"] if "b" not in layer else np.concatenate([layer["w"], layer["b"][:, None]], 1)
        col = np.linalg.norm(out, axis=0)
        zero = col <= tol.a_tol * max(1.0, float(col.max(initial=0.0)))
        live = np.flatnonzero(~zero)
        dist = np.linalg.norm(U[live][:, None] - U[live][None], axis=-1)
        nrm = np.linalg.norm(U[live], axis=1)
        comps = _union_find(len(live), dist <= tol.u_tol * np.maximum(1.0, np.maximum(nrm[:, None], nrm[None])))
        groups = [[int(live[i]) for i in c] for c in comps]
        pred += sum(len(g) - 1 for g in groups) * out.shape[0]
        if residual_zero:
            pred += int(zero.sum()) * U.shape[1]
        if activation.homogeneity == 1.0:
            pred += len(live)
        reps = [g[0] for g in groups]
        merged_out = np.stack([out[:, g].sum(axis=1) for g in groups], axis=1) if groups else out[:, :0]
        info.append((tuple(tuple(int(idx_maps[li][j]) for j in g) for g in groups),
                     tuple(int(idx_maps[li][j]) for j in np.flatnonzero(zero))))
        layers[li] = {k: v[reps] for k, v in layer.items()}
        if li == len(layers) - 1:
            a = merged_out[0]
        else:
            layers[li + 1] = dict(layers[li + 1], w=merged_out)
        rw.append(len(groups))
    return DeepReduction(widths=widths, reduced_widths=tuple(rw), layers=tuple(info), predicted_dim=int(pred))
