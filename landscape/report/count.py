"""``landscape count --teacher-width R --student-width M [--input-dim D] [--activation A] [--json]``.

Prints T(r*, m), G(r, m) and a table of the kinds of symmetry-induced affine subspaces with their counts and
dimensions (Şimşek et al. 2021; README science section 1). See :mod:`landscape.analysis.symmetry.counting`.

Sizes: up to ``--student-width`` 100 everything is exact integers (well under a second); counts of more than 30 digits
print in scientific form (``--json`` keeps the exact integers). From 101 to 10000 the closed forms are evaluated in
floating point, from log Stirling numbers (a vectorised recurrence, O(m^2), under a second at m = 10000), and only
T, T with sign flips and G(r, m) are reported, as strings such as ``"1.234e+2500"`` (integers below 10^15 stay
integers); the subspace table is left out. Wider students are refused with one line: nothing is enumerated.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..analysis.symmetry.counting import count_G, count_T, count_T_closed, subspace_table
from ..config import ConfigError, parse_activation

__all__ = ["add_parser", "main", "count_report", "EXACT_MAX_WIDTH", "MAX_WIDTH"]

EXACT_MAX_WIDTH = 100  # exact integers and the full subspace table up to this student width
MAX_WIDTH = 10_000  # floating-point closed forms up to this width; wider is refused
DIGITS = 30  # integers with more digits print in scientific form


def add_parser(subparsers):
    """Register the ``count`` subcommand on an argparse subparsers object; returns the parser."""
    p = subparsers.add_parser("count", help="count symmetry-induced subspaces T(r*, m), G(r, m) and their dimensions")
    p.add_argument("--teacher-width", type=int, required=True, help="r*: width of the (minimal) teacher")
    p.add_argument("--student-width", type=int, required=True, help="m: width of the student (>= r*)")
    p.add_argument("--input-dim", type=int, default=None, help="d: input dimension (dimensions printed in D if unset)")
    p.add_argument("--bias", action="store_true", help="students have biases (D = d + 1)")
    p.add_argument("--activation", default="sigmoid4_softplus",
                   help="activation whose symmetries count (odd: sign flips; relu: rescalings)")
    p.add_argument("--frozen-output", action="store_true", help="output weights are not trained")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=main)
    return p


def count_report(r_star: int, m: int, *, input_dim=None, bias=False, activation="sigmoid4_softplus",
                 frozen_output=False) -> dict:
    """The counts and table as a JSON-able dict; raises ConfigError on bad widths."""
    if r_star < 1:
        raise ConfigError(f"--teacher-width {r_star} must be >= 1")
    if m < r_star:
        raise ConfigError(f"--student-width {m} must be >= --teacher-width {r_star} (a narrower student cannot fit)")
    if input_dim is not None and input_dim < 1:
        raise ConfigError(f"--input-dim {input_dim} must be >= 1")
    if m > MAX_WIDTH:
        raise ConfigError(f"--student-width {m} is too large to count: the counts grow like (r*+1)^m and this "
                          f"command stops at --student-width {MAX_WIDTH}; use a smaller width")
    try:
        act = parse_activation(activation)
    except ValueError as e:
        raise ConfigError(f"--activation: {e}") from None
    if m > EXACT_MAX_WIDTH:
        return _log_report(r_star, m, act)
    rows = subspace_table(r_star, m, input_dim=input_dim, bias=bias, homogeneous=act.homogeneity is not None,
                          odd=act.odd, zero_at_zero=act.zero_at_zero, train_output_weights=not frozen_output)
    return {
        "teacher_width": r_star,
        "student_width": m,
        "exact": True,
        "activation": act.facts(),
        "T": count_T(r_star, m),
        "T_closed_form": count_T_closed(r_star, m),
        "T_with_sign_flips": count_T(r_star, m, sign_flips=True) if act.odd else None,
        "G": {r: count_G(r, m) for r in range(1, m + 1)},
        "subspaces": rows,
    }


def _log_stirling(m: int, col: int) -> tuple[np.ndarray, np.ndarray]:
    """(ln S(m, k) for k = 0..m, ln S(n, col) for n = 0..m), by the recurrence S(n, k) = k S(n-1, k) + S(n-1, k-1).

    All terms are positive, so the recurrence in log space (logaddexp) is stable; O(m^2) vectorised.
    """
    L = np.full(m + 1, -np.inf)
    L[0] = 0.0  # S(0, 0) = 1
    logk = np.log(np.arange(1, m + 1, dtype=float))
    column = np.full(m + 1, -np.inf)
    column[0] = L[col]
    for n in range(1, m + 1):
        L[1:n + 1] = np.logaddexp(logk[:n] + L[1:n + 1], L[:n])  # the right side is built before it is stored
        L[0] = -np.inf  # S(n, 0) = 0 for n >= 1
        column[n] = L[col]
    return L, column


def _from_log(ln: float) -> int | str:
    """A count given by its natural log: an integer below 10^15, else scientific notation such as 1.234e+2500."""
    if ln == -np.inf:
        return 0
    log10 = ln / math.log(10)
    if log10 < 15:
        return round(math.exp(ln))
    e = math.floor(log10)
    return f"{10 ** (log10 - e):.3f}e+{e}"


def _log_report(r_star: int, m: int, act) -> dict:
    """The closed forms in floating point for EXACT_MAX_WIDTH < m <= MAX_WIDTH (no subspace table)."""
    L, column = _log_stirling(m, r_star)  # ln S(m, k); ln S(n, r*)
    ln_fact = math.lgamma(r_star + 1)
    ln_T = ln_fact + np.logaddexp(math.log(r_star + 1) + (L[r_star + 1] if r_star < m else -np.inf), L[r_star])
    T = _from_log(float(ln_T))  # r*! S(m + 1, r* + 1), S(m + 1, k) = k S(m, k) + S(m, k - 1)
    flips = None
    if act.odd:
        j = np.arange(0, m - r_star + 1)
        ln_comb = np.array([math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) for i in j])
        terms = ln_comb + ln_fact + column[m - j] + (m - j) * math.log(2)
        flips = _from_log(float(np.logaddexp.reduce(terms)))
    G = {r: _from_log(math.lgamma(r + 1) + float(L[r])) for r in range(1, m + 1)}
    return {
        "teacher_width": r_star,
        "student_width": m,
        "exact": False,
        "activation": act.facts(),
        "T": T,
        "T_closed_form": T,
        "T_with_sign_flips": flips,
        "G": G,
        "subspaces": [],
    }


def _fmt(v) -> str:
    """A count for the terminal: integers of at most DIGITS digits as they are, longer ones in scientific form."""
    if isinstance(v, int) and abs(v) >= 10**DIGITS:
        e = math.floor(math.log10(v))
        mant = v / 10**e
        if mant >= 10:
            mant, e = mant / 10, e + 1
        return f"{mant:.3f}e+{e}"
    return str(v)


def format_report(rep: dict) -> str:
    """The report as a terminal table."""
    r, m = rep["teacher_width"], rep["student_width"]
    lines = [f"teacher width r* = {r}, student width m = {m}, activation {rep['activation']['activation']}"]
    if not rep.get("exact", True):
        lines.append(f"T({r}, {m}) = {_fmt(rep['T'])} affine subspaces of global minima (closed form r*! S(m+1, r*+1), "
                     "in floating point)")
        if rep["T_with_sign_flips"] is not None:
            lines.append(f"  with sign flips of the odd activation: {rep['T_with_sign_flips']}")
        g = rep["G"]
        shown = ", ".join(f"G({k}, {m}) = {g[k]}" for k in sorted({r, m}))
        lines.append(f"G(r, m) = r! S(m, r) for r = 1..{m}: {shown}; all of them with --json")
        lines.append(f"the table of subspace kinds is printed for --student-width <= {EXACT_MAX_WIDTH}")
        return "\n".join(lines)
    lines.append(f"T({r}, {m}) = {_fmt(rep['T'])} affine subspaces of global minima (closed form r*! S(m+1, r*+1) = "
                 f"{_fmt(rep['T_closed_form'])})")
    if rep["T_with_sign_flips"] is not None:
        lines.append(f"  with sign flips of the odd activation: {_fmt(rep['T_with_sign_flips'])}")
    lines.append("G(r, m) = r! S(m, r): " + ", ".join(f"G({k}, {m}) = {_fmt(v)}" for k, v in rep["G"].items()))
    lines.append("")
    lines.append(f"{'kind':<10}{'r':>3}{'zeros':>7}{'count':>10}  {'dim':<24}note")
    for row in rep["subspaces"]:
        lines.append(f"{row['kind']:<10}{row['r']:>3}{row['zeros']:>7}{_fmt(row['count']):>10}  "
                     f"{str(row['dim']):<24}{row['note']}")
    return "\n".join(lines)


def main(args) -> int:
    rep = count_report(args.teacher_width, args.student_width, input_dim=args.input_dim, bias=args.bias,
                       activation=args.activation, frozen_output=args.frozen_output)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0
