"""landscape: GPU-accelerated explorer of neural-network loss landscapes (teacher-student problems in JAX).

The public API, objects in and result pytrees out::

    import jax, landscape as ls
    problem = ls.TeacherStudent(teacher=ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1)),
                                student=ls.TwoLayer(width=3, activation=ls.ReLU()), loss=ls.PopulationLoss())
    res = ls.explore(problem, ls.GradientFlow(t_max=300.0), key=jax.random.key(0), n=64)
    res.table()            # pandas DataFrame, the columns `landscape run` stores
    ls.plot.spectra(res)   # the figures `landscape run` writes

- problems: :class:`TeacherStudent`, :class:`Teacher`, students :class:`TwoLayer` and :class:`MLP`, losses
  :class:`PopulationLoss` and :class:`SampleLoss`, activations (:class:`ReLU`, :class:`LeakyReLU`,
  :class:`ReLUPower`, :class:`Softplus`, :class:`Tanh`, :class:`Erf`, :class:`Sigmoid`, :class:`Sigmoid4Softplus`);
- flows: :class:`GradientFlow`, :class:`OptaxFlow` (any optax optimiser), initialisations :class:`GaussianInit`,
  :class:`OrthogonalInit`, :class:`SphereInit`, :func:`run_flow`, :func:`polish`;
- the pipeline: :func:`explore`, :func:`certify` with :class:`Polish`, the classification rule :func:`classify`;
- analyzers: :class:`AbstractAnalyzer` (write your own), :class:`HessianSpectrum`, :class:`SymmetryAnalysis`,
  :class:`Classify`, :func:`default_analyzers`, :func:`run_analyzers`;
- :mod:`landscape.plot`: figures from a result; :func:`enable_compile_cache`: JAX's persistent compilation cache;
  :func:`use_cpu_cores`: a CPU's cores as devices the lanes of a batch spread over.

Layers (no import runs back up; checked by import-linter): problem -> flow -> analysis -> config -> grid -> store
-> sweep -> report -> cli. Critical-point claims are made in float64: importing landscape enables
``jax_enable_x64``.
"""

import jax

jax.config.update("jax_enable_x64", True)

from .analysis.analyzer import AbstractAnalyzer, AnalysisResult, Point, run_analyzers  # noqa: E402
from .analysis.classify import Classify, classify  # noqa: E402
from .analysis.dynamics import directional_convergence, kkt_points, neural_correlation, saddle_to_saddle  # noqa: E402
from .analysis.explore import Certified, Exploration, Polish, certify, default_analyzers, explore  # noqa: E402
from .analysis.hessian import HessianSpectrum, hessian_matrix, hvp, spectrum  # noqa: E402
from .analysis.inverse_stability import restricted_set, stability_ratio  # noqa: E402  (issue 10)
from .analysis.isotropy import IsotropyAnalyzer, isotropy  # noqa: E402  (issue 12: spurious minima)
from .analysis.local_dimension import linear_regions, local_dimension, local_dimension_matfree  # noqa: E402
from .analysis.paths import NEB, loss_slice, neb, zero_loss_path  # noqa: E402  (issue 11: slices and paths)
from .analysis.symmetry.analyze import SymmetryAnalysis  # noqa: E402
from .flow import (  # noqa: E402
    AbstractFlow,
    AbstractInit,
    GaussianInit,
    GradientFlow,
    OptaxFlow,
    OrthogonalInit,
    SphereInit,
    Trajectory,
    polish,
    run_flow,
    use_cpu_cores,
)
from .problem import (  # noqa: E402
    MLP,
    AbstractActivation,
    AbstractLoss,
    Erf,
    LeakyReLU,
    PopulationLoss,
    ReLU,
    ReLUPower,
    SampleLoss,
    Sigmoid,
    Sigmoid4Softplus,
    Softplus,
    Tanh,
    Teacher,
    TeacherStudent,
    TwoLayer,
)
from .problem.datasets import Supervised  # noqa: E402  (issue 10: digits, MNIST)

__version__ = "0.1.0"

__all__ = [
    # problems
    "TeacherStudent", "Teacher", "TwoLayer", "MLP", "AbstractLoss", "PopulationLoss", "SampleLoss",
    "AbstractActivation", "ReLU", "LeakyReLU", "ReLUPower", "Softplus", "Tanh", "Erf", "Sigmoid", "Sigmoid4Softplus",
    # flows
    "AbstractFlow", "GradientFlow", "OptaxFlow", "Trajectory", "run_flow", "polish",
    "AbstractInit", "GaussianInit", "OrthogonalInit", "SphereInit",
    # pipeline and analyzers
    "explore", "Exploration", "certify", "Certified", "Polish", "classify",
    "AbstractAnalyzer", "Point", "AnalysisResult", "run_analyzers", "default_analyzers",
    "HessianSpectrum", "SymmetryAnalysis", "Classify", "hessian_matrix", "hvp", "spectrum",
    # slices, zero-loss paths, nudged elastic bands (issue 11)
    "loss_slice", "zero_loss_path", "neb", "NEB",
    # small-initialisation dynamics (issue 9)
    "neural_correlation", "kkt_points", "directional_convergence", "saddle_to_saddle",
    # isotropy in S_k x S_d (issue 12)
    "IsotropyAnalyzer", "isotropy",
    # local dimension, inverse stability, real data (issue 10)
    "local_dimension", "local_dimension_matfree", "linear_regions", "stability_ratio", "restricted_set", "Supervised",
    # figures
    "plot",
    # runtime
    "enable_compile_cache", "use_cpu_cores",
]


def __getattr__(name):
    # ``landscape.plot`` imports matplotlib: load it on first use only.
    if name == "plot":
        from .report import plot

        return plot
    if name == "enable_compile_cache":  # lives with the other on-disk state; pandas/pyarrow load on first use only
        from .store.compile_cache import enable_compile_cache

        return enable_compile_cache
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")
