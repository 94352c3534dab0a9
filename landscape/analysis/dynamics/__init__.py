"""Small-initialisation dynamics of homogeneous networks (Kumar & Haupt 2024; README, science section 3).

- :mod:`.neural_correlation`: the neural correlation function N, its KKT points on the unit sphere, rank-one checks;
- :mod:`.directional`: directional convergence of loss flows from delta * w0 against delta, and escape times;
- :mod:`.plateaus`: plateaus of loss curves and the certified critical points visited (saddle-to-saddle).
"""

from .directional import (
    DirectionalSweep,
    cosine_mod_permutation,
    cosine_mod_split,
    directional_convergence,
    escape_time_law,
)
from .neural_correlation import (
    KKTPoints,
    homogeneity_order,
    kkt_points,
    kkt_residual,
    neural_correlation,
    one_neuron_correlation,
    rank_one_condition,
)
from .plateaus import SaddleSequence, Visit, detect_plateaus, saddle_to_saddle

__all__ = ["DirectionalSweep", "cosine_mod_permutation", "cosine_mod_split", "directional_convergence",
           "escape_time_law",
           "SaddleSequence", "Visit", "detect_plateaus", "saddle_to_saddle",
           "KKTPoints", "homogeneity_order", "kkt_points", "kkt_residual", "neural_correlation",
           "one_neuron_correlation", "rank_one_condition"]
