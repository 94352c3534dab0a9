"""Symmetry analyzer: reduce, identify and predict the symmetry-induced subspace of every critical point.

Two-layer nets f(x) = sum_j a_j sigma(w_j . x + b_j) (Şimşek et al. 2021; Fukumizu & Amari 2000; Berner et al.
2019; README science sections 1 and 5). Modules:

- :mod:`.groups`: pure group actions (permutations, sign flips, rescalings);
- :mod:`.reduce`: minimal form (zero-output, dead, coincident neurons), deep layer-by-layer reduction;
- :mod:`.canonical`: canonical form, distance modulo symmetry (Hungarian assignment);
- :mod:`.identify`: global minimum / symmetry-induced / other, subspace labels;
- :mod:`.subspace`: predicted tangent directions and dimension, zero-loss Jacobian null prediction, sampling checks;
- :mod:`.embed`: embedding width r -> m, split matrix A_i, split-ratio scan with Hessian index;
- :mod:`.counting`: T(r*, m), G(r, m) closed forms and brute-force enumeration;
- :mod:`.analyze`: ``analyze_points`` (run pipeline) and ``explain_null_space`` (``landscape hessian``);
- :mod:`.batch`: the same columns for a whole batch at once (``analyze_batch``, ``reduce_batch``).
"""

from .analyze import COLUMNS, SymmetryAnalysis, analyze_point, analyze_points, explain_null_space, summarize
from .batch import analyze_batch, reduce_batch
from .canonical import canonicalize, distance_mod_symmetry
from .counting import brute_force_G, brute_force_T, count_G, count_T, count_T_closed, stirling2, subspace_table
from .embed import embed, problem_with_width, split_matrix, split_scan
from .groups import flip_signs, permute, random_symmetry, rescale
from .identify import Identity, identify, teacher_reduction
from .reduce import DeepReduction, Reduction, Tolerances, reduce_deep, reduce_two_layer
from .subspace import check_subspace, jacobian_null_prediction, subspace_samples, tangent_directions

__all__ = [
    "COLUMNS",
    "SymmetryAnalysis",
    "analyze_point",
    "analyze_points",
    "explain_null_space",
    "summarize",
    "analyze_batch",
    "reduce_batch",
    "canonicalize",
    "distance_mod_symmetry",
    "brute_force_G",
    "brute_force_T",
    "count_G",
    "count_T",
    "count_T_closed",
    "stirling2",
    "subspace_table",
    "embed",
    "problem_with_width",
    "split_matrix",
    "split_scan",
    "flip_signs",
    "permute",
    "random_symmetry",
    "rescale",
    "Identity",
    "identify",
    "teacher_reduction",
    "DeepReduction",
    "Reduction",
    "Tolerances",
    "reduce_deep",
    "reduce_two_layer",
    "check_subspace",
    "jacobian_null_prediction",
    "subspace_samples",
    "tangent_directions",
]
