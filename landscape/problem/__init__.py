"""Problem layer: activations, networks, teachers, data and losses for one student."""

from .activations import Activation, get_activation
from .networks import MLP, Network, TwoLayerNet
from .problem import Problem, build_problem, loss

__all__ = ["Activation", "get_activation", "MLP", "Network", "TwoLayerNet", "Problem", "build_problem", "loss"]
