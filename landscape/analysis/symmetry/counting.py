"""Counting symmetry-induced affine subspaces (Şimşek et al. 2021; README science section 1).

A width-m two-layer student whose neurons are mapped onto the r neurons of a narrower critical point theta_r
(duplication / splitting) or onto "zero" (outgoing weight 0, incoming vector free) realises theta_r's function.

- G(r, m) = r! S(m, r): surjections of the m student neurons onto the r neurons of theta_r (S = Stirling numbers
  of the second kind); each gives an affine subspace of dimension m - r (split ratios), mostly saddles.
- T(r*, m) = sum_{j=0}^{m-r*} C(m, j) G(r*, m - j) = r*! S(m + 1, r* + 1): maps of the m neurons onto the r* teacher
  neurons or zero, surjective on the teacher; the global-minimum manifold is the union of these subspaces, the one
  with j zero neurons of dimension (m - j - r*) + j D, D = d (+1 with biases).

The closed forms are a reconstruction; :func:`enumerate_maps` counts by brute force and the tests
compare both (and build every subspace numerically). Activation-specific symmetries multiply the counts:
odd activations (sign flips) give 2^(m - j) sign choices to the non-zero neurons; activations with sigma(0) = 0
add "zero-input" neurons (w = 0, a free) beside zero-output ones, 2^j choices for the j null neurons. Positive
homogeneity (ReLU) does not change the count but adds one rescaling dimension per non-zero neuron.
"""

from __future__ import annotations

import itertools
from math import comb, factorial

__all__ = [
    "stirling2",
    "count_G",
    "count_T",
    "count_T_closed",
    "count_T_by_zeros",
    "enumerate_maps",
    "brute_force_G",
    "brute_force_T",
    "subspace_table",
]


def stirling2(n: int, k: int) -> int:
    """Stirling number of the second kind S(n, k): partitions of n labelled items into k non-empty blocks."""
    if n < 0 or k < 0:
        raise ValueError(f"stirling2 needs n, k >= 0, got ({n}, {k})")
    if n == k:
        return 1
    if k == 0 or k > n:
        return 0
    row = [1] + [0] * k  # S(0, .)
    for i in range(1, n + 1):
        new = [0] * (k + 1)
        for j in range(1, min(i, k) + 1):
            new[j] = j * row[j] + row[j - 1]
        row = new
    return row[k]


def count_G(r: int, m: int) -> int:
    """G(r, m) = r! S(m, r): affine subspaces of width-m critical points embedding one width-r critical point."""
    return factorial(r) * stirling2(m, r)


def count_T_by_zeros(r_star: int, m: int, *, sign_flips: bool = False, zero_inputs: bool = False) -> dict[int, int]:
    """{j: C(m, j) G(r*, m - j) [x 2^(m-j) with sign flips] [x 2^j with zero-input neurons]} for j zero neurons."""
    out = {}
    for j in range(0, m - r_star + 1):
        c = comb(m, j) * count_G(r_star, m - j)
        if sign_flips:
            c *= 2 ** (m - j)
        if zero_inputs:
            c *= 2**j
        out[j] = c
    return out


def count_T(r_star: int, m: int, *, sign_flips: bool = False, zero_inputs: bool = False) -> int:
    """T(r*, m) = sum_j C(m, j) G(r*, m - j): affine subspaces making up the global-minimum manifold."""
    return sum(count_T_by_zeros(r_star, m, sign_flips=sign_flips, zero_inputs=zero_inputs).values())


def count_T_closed(r_star: int, m: int) -> int:
    """The closed form T(r*, m) = r*! S(m + 1, r* + 1) (README science section 1); equals count_T (no extras)."""
    return factorial(r_star) * stirling2(m + 1, r_star + 1)


def enumerate_maps(r: int, m: int, *, zeros: bool, sign_flips: bool = False, zero_inputs: bool = False):
    """Brute force: every map of the m student neurons to one of the r neurons (or a null kind), surjective on r.

    Yields tuples of length m whose entries are ``(k, s)`` with k in 0..r-1 and sign s in (+1, -1) (only +1
    without ``sign_flips``), or ``"z"`` (zero outgoing weight) / ``"i"`` (zero input, with ``zero_inputs``).
    """
    options = [(k, s) for k in range(r) for s in ((1, -1) if sign_flips else (1,))]
    if zeros:
        options += ["z"] + (["i"] if zero_inputs else [])
    for f in itertools.product(options, repeat=m):
        hit = {o[0] for o in f if isinstance(o, tuple)}
        if len(hit) == r:
            yield f


def brute_force_G(r: int, m: int) -> int:
    """G(r, m) by enumerating surjections of m neurons onto r."""
    return sum(1 for _ in enumerate_maps(r, m, zeros=False))


def brute_force_T(r_star: int, m: int, *, sign_flips: bool = False, zero_inputs: bool = False) -> int:
    """T(r*, m) by enumerating maps onto the teacher neurons or zero, surjective on the teacher."""
    return sum(1 for _ in enumerate_maps(r_star, m, zeros=True, sign_flips=sign_flips, zero_inputs=zero_inputs))


def subspace_table(r_star: int, m: int, *, input_dim: int | None = None, bias: bool = False,
                   homogeneous: bool = False, odd: bool = False, zero_at_zero: bool = False,
                   train_output_weights: bool = True) -> list[dict]:
    """Rows describing each kind of symmetry-induced subspace of a width-m student with a width-r* teacher.

    Each row: kind ("global" with j zero-output neurons, or "embedded" from a width-r critical point, r < m),
    ``r``, ``zeros`` (j), ``count`` (number of affine subspaces; per width-r critical point for "embedded"),
    ``dim`` (an int if ``input_dim`` is given, else a formula in D = d (+1 with bias)) and ``note``.

    Dimensions: split ratios give n_k - 1 per group (m - j - r in all), a zero-output neuron's free incoming vector
    D; with homogeneous activations each non-zero neuron adds a rescaling (curved orbit, counted as a dimension);
    with frozen output weights the split ratios are fixed (0 dimensions; homogeneous: n_k - 1 norms instead).
    """
    D = None if input_dim is None else input_dim + int(bias)
    rows = []

    def dim(split: int, zeros: int, live: int):
        if not train_output_weights:
            split = split if homogeneous else 0
            rescale = 0
        else:
            rescale = live if homogeneous else 0
        if D is not None:
            return split + zeros * D + rescale
        parts = [str(split)] if split or not (zeros or rescale) else []
        if zeros:
            parts.append(f"{zeros}D")
        if rescale:
            parts.append(f"{rescale} (rescalings)")
        return " + ".join(parts)

    by_zero = count_T_by_zeros(r_star, m, sign_flips=odd)
    for j, c in by_zero.items():
        note = "zero-output neurons: incoming vector free"
        if odd:
            note += f"; x2^{m - j} sign flips"
        rows.append({"kind": "global", "r": r_star, "zeros": j, "count": c, "dim": dim(m - j - r_star, j, m - j),
                     "note": note if j else ("isolated up to symmetry" if m == r_star and not homogeneous
                                             else "split ratios" + (f"; x2^{m} sign flips" if odd else ""))})
        if zero_at_zero and j:
            rows.append({"kind": "global", "r": r_star, "zeros": j,
                         "count": comb(m, j) * count_G(r_star, m - j) * (2**j - 1) * (2 ** (m - j) if odd else 1),
                         "dim": "mixed", "note": "some null neurons zero-input (w = 0, a free) instead"})
    for r in range(1, m):
        c = count_G(r, m) * (2**m if odd else 1)
        rows.append({"kind": "embedded", "r": r, "zeros": 0, "count": c, "dim": dim(m - r, 0, m),
                     "note": "per width-r critical point" + (" (saddles mostly)" if r < r_star else
                                                           " (r >= r*: non-global critical points)")})
    return rows
