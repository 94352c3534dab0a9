"""landscape: GPU-accelerated explorer of neural-network loss landscapes (teacher-student problems in JAX).

Layers: :mod:`landscape.problem` (networks, activations, teachers, data, losses) -> :mod:`landscape.flow`
(integrators, polishing) -> :mod:`landscape.analysis` (Hessian, classification, symmetry) -> :mod:`landscape.sweep`
(configs, execution, storage) -> :mod:`landscape.report` (figures, CLI).

Critical-point claims are made in float64: importing landscape enables ``jax_enable_x64``.
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
