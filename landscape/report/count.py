"""``landscape count --teacher-width R --student-width M [--input-dim D] [--activation A] [--json]``.

Prints T(r*, m), G(r, m) and a table of the kinds of symmetry-induced affine subspaces with their counts and
dimensions (Şimşek et al. 2021; papers.md, section 1). See :mod:`landscape.analysis.symmetry.counting`.
"""

from __future__ import annotations

import json

from ..analysis.symmetry.counting import count_G, count_T, count_T_closed, subspace_table
from ..config import ConfigError, parse_activation

__all__ = ["add_parser", "main", "count_report"]


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
    try:
        act = parse_activation(activation)
    except ValueError as e:
        raise ConfigError(f"--activation: {e}") from None
    rows = subspace_table(r_star, m, input_dim=input_dim, bias=bias, homogeneous=act.homogeneity is not None,
                          odd=act.odd, zero_at_zero=act.zero_at_zero, train_output_weights=not frozen_output)
    return {
        "teacher_width": r_star,
        "student_width": m,
        "activation": act.facts(),
        "T": count_T(r_star, m),
        "T_closed_form": count_T_closed(r_star, m),
        "T_with_sign_flips": count_T(r_star, m, sign_flips=True) if act.odd else None,
        "G": {r: count_G(r, m) for r in range(1, m + 1)},
        "subspaces": rows,
    }


def format_report(rep: dict) -> str:
    """The report as a terminal table."""
    r, m = rep["teacher_width"], rep["student_width"]
    lines = [f"teacher width r* = {r}, student width m = {m}, activation {rep['activation']['activation']}",
             f"T({r}, {m}) = {rep['T']} affine subspaces of global minima (closed form r*! S(m+1, r*+1) = "
             f"{rep['T_closed_form']})"]
    if rep["T_with_sign_flips"] is not None:
        lines.append(f"  with sign flips of the odd activation: {rep['T_with_sign_flips']}")
    lines.append("G(r, m) = r! S(m, r): " + ", ".join(f"G({k}, {m}) = {v}" for k, v in rep["G"].items()))
    lines.append("")
    lines.append(f"{'kind':<10}{'r':>3}{'zeros':>7}{'count':>10}  {'dim':<24}note")
    for row in rep["subspaces"]:
        lines.append(f"{row['kind']:<10}{row['r']:>3}{row['zeros']:>7}{row['count']:>10}  {str(row['dim']):<24}"
                     f"{row['note']}")
    return "\n".join(lines)


def main(args) -> int:
    rep = count_report(args.teacher_width, args.student_width, input_dim=args.input_dim, bias=args.bias,
                       activation=args.activation, frozen_output=args.frozen_output)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0
