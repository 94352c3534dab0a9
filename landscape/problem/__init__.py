"""Problem layer: activations, networks, teachers, losses and the teacher-student problem, for one student."""

from .activations import (
    ACTIVATIONS,
    AbstractActivation,
    Activation,
    Erf,
    LeakyReLU,
    ReLU,
    ReLUPower,
    Sigmoid,
    Sigmoid4Softplus,
    Softplus,
    Tanh,
)
from .losses import AbstractLoss, PopulationLoss, SampleLoss
from .networks import MLP, Network, TwoLayer
from .problem import Problem, TeacherStudent, loss, loss_accurate
from .teachers import Teacher

__all__ = ["ACTIVATIONS", "AbstractActivation", "Activation", "Erf", "LeakyReLU", "ReLU", "ReLUPower", "Sigmoid",
           "Sigmoid4Softplus", "Softplus", "Tanh", "AbstractLoss", "PopulationLoss", "SampleLoss", "MLP", "Network",
           "TwoLayer", "Problem", "TeacherStudent", "loss", "loss_accurate", "Teacher"]
