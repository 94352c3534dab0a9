"""Run configuration: TOML sections as frozen dataclasses, resolved and validated once at the edge.

A config file has the sections ``[problem]``, ``[teacher]``, ``[student]``, ``[init]``, ``[flow]``,
``[polish]``, ``[analysis]`` (and ``[sweep]``, read by :mod:`landscape.sweep`). Every field has a default except
the sizes (``problem.input_dim``, ``teacher.width``, ``student.width``). Field names match the keyword
arguments of the functions they configure. Errors name the offending key and the fix in one line
(:class:`ConfigError`); the CLI prints that line and exits with code 2.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .analysis.analyzer import AbstractAnalyzer
from .analysis.classify import Classify
from .analysis.explore import Polish
from .analysis.hessian import HessianSpectrum
from .analysis.isotropy import IsotropyAnalyzer, has_symmetry
from .analysis.symmetry.analyze import SymmetryAnalysis
from .flow.gradient_flow import GradientFlow
from .flow.init import GaussianInit, OrthogonalInit, SphereInit
from .flow.optimizers import OptaxFlow
from .problem import activations as A
from .problem.losses import PopulationLoss, SampleLoss
from .problem.networks import MLP, TwoLayer
from .problem.problem import TeacherStudent
from .problem.teachers import Teacher

__all__ = [
    "ConfigError",
    "Config",
    "ProblemConfig",
    "TeacherConfig",
    "StudentConfig",
    "InitConfig",
    "FlowConfig",
    "PolishConfig",
    "AnalysisConfig",
    "load_config",
    "read_raw_config",
    "config_from_dict",
    "config_to_toml",
    "apply_overrides",
    "parse_activation",
    "ACTIVATION_NAMES",
    "ANALYZERS",
    "build",
    "Built",
    "build_problem",
    "build_flow",
    "build_init",
    "build_polish",
    "build_analyzers",
    "count_trainable",
    "memory_limit",
]


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the key and how to fix it."""


REQUIRED = object()


@dataclass(frozen=True)
class ProblemConfig:
    input_dim: int = REQUIRED  # type: ignore[assignment]
    activation: str = "relu"
    loss: str = "population"  # "population" | "sample"
    n_samples: int = 1000
    data_seed: int = 0
    data_file: str = ""  # .npz with "x" (n, d) and optionally "y" (n,)
    dataset: str = ""  # "" (teacher-student) | "digits" | "mnist": real data, labels as one-hot targets, no teacher
    data_path: str = ""  # directory of the MNIST IDX files, for dataset = "mnist"
    quadrature_order: int = 0  # nodes per dimension of the 2-D quadrature (smooth activations); 0 = automatic


@dataclass(frozen=True)
class TeacherConfig:
    kind: str = "orthonormal"  # "orthonormal" | "gaussian" | "file"
    width: int = REQUIRED  # type: ignore[assignment]
    output_weights: Any = "ones"  # "ones" | "gaussian" | number | list of numbers
    bias: bool = False
    hidden_widths: list = field(default_factory=list)  # deep teacher: widths of all hidden layers
    seed: int = 1
    file: str = ""  # .npz with "w", "a" (and "b"), for kind = "file"


@dataclass(frozen=True)
class StudentConfig:
    width: int = REQUIRED  # type: ignore[assignment]
    bias: bool = False
    train_output_weights: bool = True
    output_weights: Any = "teacher"  # frozen values: "teacher" | number | list (used when not trained)
    hidden_widths: list = field(default_factory=list)  # deep student: widths of all hidden layers


@dataclass(frozen=True)
class InitConfig:
    count: int = 64
    scale: float = 1.0
    distribution: str = "gaussian"  # "gaussian" | "sphere" | "orthogonal"
    seed: int = 0


@dataclass(frozen=True)
class FlowConfig:
    method: str = "gradient_flow"  # "gradient_flow" | "gd" | "momentum" | "adam"
    t_max: float = 1.0e4
    grad_tol: float = 1.0e-6  # hand-off to Newton polishing (README, Numerics)
    rtol: float = 1.0e-8
    atol: float = 1.0e-10
    max_steps: int = 200_000
    segment_steps: int = 256  # solver steps / optimiser updates per segment of a packed batch, 0 = one loop (lockstep)
    lr: float = 0.01
    momentum: float = 0.9
    steps: int = 20_000
    n_snapshots: int = 64
    save_params: bool = False


@dataclass(frozen=True)
class PolishConfig:
    enabled: bool = True
    tol: float = 1.0e-10
    max_iter: int = 300
    handoff_tol: float = 1.0e-3  # flows stop here, Newton takes over; 0: flows run to flow.grad_tol (handoff.py)
    segment_iters: int = 8  # polishing passes per segment of a packed batch, 0 = one loop (lockstep)


@dataclass(frozen=True)
class AnalysisConfig:
    zero_tol: float = 1.0e-7  # eigenvalues |lambda| <= zero_tol * max|lambda| count as zero
    global_loss_tol: float = 1.0e-20  # a minimum with loss below this is a global (zero-loss) minimum
    hessian: bool = True
    # the analysis stage, in order: built-in names (see ANALYZERS) or "module:Class" of an AbstractAnalyzer
    analyzers: list = field(default_factory=lambda: ["hessian", "symmetry", "classify"])


@dataclass(frozen=True)
class Config:
    problem: ProblemConfig
    teacher: TeacherConfig
    student: StudentConfig
    init: InitConfig = field(default_factory=InitConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    polish: PolishConfig = field(default_factory=PolishConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    sweep: dict = field(default_factory=dict)


SECTIONS = {
    "problem": ProblemConfig,
    "teacher": TeacherConfig,
    "student": StudentConfig,
    "init": InitConfig,
    "flow": FlowConfig,
    "polish": PolishConfig,
    "analysis": AnalysisConfig,
}

CHOICES = {
    ("problem", "loss"): ("population", "sample"),
    ("teacher", "kind"): ("orthonormal", "gaussian", "file"),
    ("init", "distribution"): ("gaussian", "sphere", "orthogonal"),
    ("flow", "method"): ("gradient_flow", "gd", "momentum", "adam"),
}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(section: str, key: str, value, tp):
    """Check ``value`` against the declared field type; ints are accepted for floats."""
    where = f"{section}.{key}"
    if tp in ("int", int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp in ("float", float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp in ("bool", bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp in ("str", str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if tp in ("list", list):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return value
    return value


def _section(name: str, cls, raw) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {name}.{unknown[0]}; valid keys in [{name}]: {', '.join(fields)}"
        )
    kwargs = {}
    for key, f in fields.items():
        if key in raw:
            kwargs[key] = _coerce(name, key, raw[key], f.type)
        elif f.default is REQUIRED:
            raise ConfigError(f"missing required key {name}.{key}; add it to the [{name}] table")
    return cls(**kwargs)


FIGURE_SECTIONS = ("dynamics", "connectivity")
"""Tables a shipped config may carry for ``landscape figure NAME`` (read and validated by that figure's module);
``landscape run`` accepts and ignores them, so every shipped config also runs."""


def config_from_dict(raw: dict) -> Config:
    """Build and validate a :class:`Config` from a parsed TOML dict."""
    unknown = sorted(set(raw) - set(SECTIONS) - {"sweep"} - set(FIGURE_SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}]; valid sections: {', '.join(SECTIONS)}, sweep "
                          f"(and {', '.join(FIGURE_SECTIONS)} for figures)")
    raw = {k: v for k, v in raw.items() if k not in FIGURE_SECTIONS}
    dataset = raw.get("problem", {}).get("dataset", "") if isinstance(raw.get("problem"), dict) else ""
    if dataset and "teacher" not in raw:  # real data has no teacher: the [teacher] section may be left out
        raw = {**raw, "teacher": {"width": 1}}
    for name in ("problem", "teacher", "student"):
        if name not in raw:
            raise ConfigError(f"missing section [{name}]; it holds required sizes (see configs/quickstart.toml)")
    parts = {name: _section(name, cls, raw.get(name, {})) for name, cls in SECTIONS.items()}
    sweep = raw.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError(f"[sweep] must be a table, got {sweep!r}")
    cfg = Config(**parts, sweep=sweep)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Check choices, sizes and combinations; raise :class:`ConfigError` with one line naming the key."""
    for (sec, key), allowed in CHOICES.items():
        value = getattr(getattr(cfg, sec), key)
        if value not in allowed:
            raise ConfigError(f"{sec}.{key} = {value!r} is not valid; use one of: {', '.join(allowed)}")
    p, t, s, i, fl, po, an = cfg.problem, cfg.teacher, cfg.student, cfg.init, cfg.flow, cfg.polish, cfg.analysis
    try:
        act = parse_activation(p.activation)
    except ValueError as e:
        raise ConfigError(f"problem.activation: {e}") from None
    for name, cls in SECTIONS.items():  # TOML reads inf and nan as numbers
        for f in dataclasses.fields(cls):
            v = getattr(getattr(cfg, name), f.name)
            if f.type in ("float", float) and not math.isfinite(v):
                raise ConfigError(f"{name}.{f.name} = {v} is not a finite number; give a finite value")
    positive = [
        ("problem.input_dim", p.input_dim),
        ("teacher.width", t.width),
        ("student.width", s.width),
        ("init.count", i.count),
        ("problem.n_samples", p.n_samples),
        ("flow.max_steps", fl.max_steps),
        ("flow.steps", fl.steps),
        ("flow.n_snapshots", fl.n_snapshots),
        ("polish.max_iter", po.max_iter),
    ]
    for key, v in positive:
        if v < 1:
            raise ConfigError(f"{key} = {v} must be >= 1")
    if not po.handoff_tol >= 0:
        raise ConfigError(f"polish.handoff_tol = {po.handoff_tol} must be >= 0 (0: no early hand-off); use e.g. 1e-3")
    if fl.segment_steps < 0:
        raise ConfigError(f"flow.segment_steps = {fl.segment_steps} must be >= 0 (0 runs each flow as one solve)")
    if po.segment_iters < 0:
        raise ConfigError(f"polish.segment_iters = {po.segment_iters} must be >= 0 (0 polishes a batch as one loop)")
    for key, v in [("init.scale", i.scale), ("flow.t_max", fl.t_max), ("flow.lr", fl.lr),
                   ("flow.grad_tol", fl.grad_tol), ("flow.rtol", fl.rtol), ("flow.atol", fl.atol),
                   ("polish.tol", po.tol), ("analysis.zero_tol", an.zero_tol)]:
        if not v > 0:
            raise ConfigError(f"{key} = {v} must be > 0")
    if not an.zero_tol < 1:
        raise ConfigError(f"analysis.zero_tol = {an.zero_tol} must be < 1 (it is relative to max|lambda|: at 1 every "
                          "eigenvalue counts as zero); use e.g. 1e-7")
    if not an.global_loss_tol >= 0:
        raise ConfigError(f"analysis.global_loss_tol = {an.global_loss_tol} must be >= 0 (a minimum with loss at or "
                          "below it is global); use e.g. 1e-20")
    if p.quadrature_order < 0 or 0 < p.quadrature_order < 16:
        raise ConfigError(
            f"problem.quadrature_order = {p.quadrature_order}; use 0 (automatic: 128, 256 for sigmoid4_softplus) "
            "or at least 16 nodes"
        )
    if not 0 <= fl.momentum < 1:
        raise ConfigError(f"flow.momentum = {fl.momentum} must be in [0, 1)")
    if t.kind == "orthonormal" and t.width > p.input_dim:
        raise ConfigError(
            f"teacher.width = {t.width} exceeds problem.input_dim = {p.input_dim}: an orthonormal teacher has at "
            "most input_dim neurons; lower teacher.width or use teacher.kind = \"gaussian\""
        )
    if t.kind == "file" and not t.file:
        raise ConfigError('teacher.file is empty; give the path of an .npz with "w" and "a" for teacher.kind = "file"')
    if t.kind == "file" and len(t.hidden_widths) > 1:
        raise ConfigError('teacher.kind = "file" reads a two-layer teacher; drop teacher.hidden_widths or use '
                          'teacher.kind = "gaussian" for a deep teacher')
    for key, widths in [("teacher.hidden_widths", t.hidden_widths), ("student.hidden_widths", s.hidden_widths)]:
        if widths and not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in widths):
            raise ConfigError(f"{key} = {widths!r} must be a list of positive integers")
        if widths and widths[-1] != (t.width if key.startswith("teacher") else s.width):
            owner = key.split(".")[0]
            raise ConfigError(
                f"{key} = {widths!r} must end with {owner}.width = "
                f"{t.width if owner == 'teacher' else s.width} (the last hidden layer)"
            )
    deep = bool(t.hidden_widths and len(t.hidden_widths) > 1) or bool(s.hidden_widths and len(s.hidden_widths) > 1)
    if p.loss == "population":
        if deep:
            raise ConfigError(
                "problem.loss = \"population\" supports two-layer nets only; use loss = \"sample\" for deep nets"
            )
        if p.data_file:
            raise ConfigError("problem.data_file is set but problem.loss = \"population\"; use loss = \"sample\"")
        if not act.smooth and (s.bias or t.bias or not act.has_closed_form):
            raise ConfigError(
                f"problem.loss = \"population\" with activation {act.label!r} is exact only without biases and for "
                "relu, relu^2, relu^3, leaky_relu, erf or a smooth activation; use loss = \"sample\" or drop the biases"
            )
    if not s.train_output_weights:
        ow = s.output_weights
        if isinstance(ow, list) and len(ow) != s.width:
            raise ConfigError(f"student.output_weights has {len(ow)} entries; it needs student.width = {s.width}")
        if not (ow == "teacher" or isinstance(ow, int | float | list)) or isinstance(ow, bool):
            raise ConfigError(f"student.output_weights = {ow!r}; use \"teacher\", a number or a list of numbers")
        _check_numbers("student.output_weights", ow, "\"teacher\", a number or a list of numbers")
    if isinstance(t.output_weights, list) and len(t.output_weights) != t.width:
        n = len(t.output_weights)
        raise ConfigError(f"teacher.output_weights has {n} entries; it needs teacher.width = {t.width}")
    if isinstance(t.output_weights, str) and t.output_weights not in ("ones", "gaussian"):
        raise ConfigError(
            f"teacher.output_weights = {t.output_weights!r}; use \"ones\", \"gaussian\", a number or a list"
        )
    if not isinstance(t.output_weights, str | int | float | list) or isinstance(t.output_weights, bool):
        raise ConfigError(f"teacher.output_weights = {t.output_weights!r}; use \"ones\", \"gaussian\", a number or a "
                          "list of numbers")
    _check_numbers("teacher.output_weights", t.output_weights, "\"ones\", \"gaussian\", a number or a list of numbers")
    _check_dataset(cfg)
    teacher_a, n_rows = _check_files(cfg, act)
    _check_sizes(cfg, n_rows)
    if not s.train_output_weights and s.output_weights == "teacher" and s.width != t.width:
        ow = t.output_weights
        if t.kind != "file":  # the file's weights are in teacher_a
            teacher_a = None if ow == "gaussian" else ow if isinstance(ow, list) else [ow]
        if teacher_a is None or any(v != teacher_a[0] for v in teacher_a):
            raise ConfigError(
                f"student.output_weights = \"teacher\" copies the teacher's output weights, but student.width = "
                f"{s.width} differs from teacher.width = {t.width} and the teacher's weights are not all equal; "
                f"give student.output_weights as a number or a list of {s.width} numbers"
            )

    build_analyzers(an)  # names, imports and order, each failure one line


def _check_numbers(key: str, value, use: str) -> None:
    """A number or list of numbers given for ``key`` must be finite real numbers (not booleans, nan or inf)."""
    values = value if isinstance(value, list) else [value] if isinstance(value, int | float) else []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{key} = {value!r}: {v!r} is not a number; use {use}")
        if not math.isfinite(v):
            raise ConfigError(f"{key} = {value!r}: {v} is not a finite number; give finite values")


# ---------------------------------------------------------------------------------------------------------------
# sizes: refuse what cannot fit in memory before anything is allocated

MEMORY_FALLBACK = 64 * 2**30  # bytes assumed where the operating system does not report its memory


def memory_limit() -> int:
    """Total physical memory of this machine in bytes (``os.sysconf``; 64 GiB where it is not reported).

    Validation refuses a config when one trajectory's unavoidable state (a dense float64 Hessian of 8 P^2 bytes, the
    population kernel matrices, the sample, the snapshots) or the arrays of one grid point kept for ``arrays.npz``
    need more than this: such a run can only end in a MemoryError. The bounds are lower bounds of what a run needs,
    so nothing that fits is refused (the chunk size then adapts to the free memory).
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 0
    return int(total) if total > 0 else MEMORY_FALLBACK


def _layer_widths(hidden_widths: list, width: int) -> list[int]:
    return list(hidden_widths) if len(hidden_widths) > 1 else [width]


def _count_params(d: int, widths: list[int], bias: bool, output: bool) -> int:
    n, fan_in = 0, d
    for w in widths:
        n += w * fan_in + (w if bias else 0)
        fan_in = w
    return n + (widths[-1] if output else 0)


DATASET_SHAPES = {"digits": (64, 1797, 10), "mnist": (784, None, 10)}
"""problem.dataset -> (input_dim, number of samples or None when read from problem.data_path, classes)."""


def _check_dataset(cfg: Config) -> None:
    """``problem.dataset`` / ``problem.data_path``: one ConfigError line for each bad combination."""
    p = cfg.problem
    if not p.dataset:
        if p.data_path:
            raise ConfigError('problem.data_path is set but problem.dataset is not; set problem.dataset = "mnist" or '
                              "drop problem.data_path")
        return
    if p.dataset not in DATASET_SHAPES:
        raise ConfigError(f"problem.dataset = {p.dataset!r} is not valid; use one of: {', '.join(DATASET_SHAPES)} "
                          "(or leave it out for a teacher-student problem)")
    d, n, _ = DATASET_SHAPES[p.dataset]
    if p.loss != "sample":
        raise ConfigError(f'problem.dataset = "{p.dataset}" needs problem.loss = "sample" (a finite data set)')
    if p.data_file:
        raise ConfigError(f'problem.dataset = "{p.dataset}" and problem.data_file are both set; keep one of them')
    if p.input_dim != d:
        raise ConfigError(f'problem.input_dim = {p.input_dim} but problem.dataset = "{p.dataset}" has {d} input '
                          f"dimensions; set problem.input_dim = {d}")
    if n is not None and p.n_samples > n:
        raise ConfigError(f'problem.n_samples = {p.n_samples} but problem.dataset = "{p.dataset}" has {n} samples; '
                          f"use at most {n}")
    if p.dataset == "mnist":
        if not p.data_path:
            raise ConfigError('problem.dataset = "mnist" needs problem.data_path, the directory of the MNIST IDX '
                              "files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz)")
        if not Path(p.data_path).is_dir():
            raise ConfigError(f"problem.data_path = {p.data_path!r} is not a directory; give the directory of the "
                              "MNIST IDX files")
    elif p.data_path:
        raise ConfigError(f'problem.data_path is set but problem.dataset = "{p.dataset}" is bundled; drop '
                          "problem.data_path")


def count_trainable(cfg: Config) -> int:
    """The number P of trainable student parameters of ``cfg``, from the sizes alone (nothing is built)."""
    s = cfg.student
    n = _count_params(cfg.problem.input_dim, _layer_widths(s.hidden_widths, s.width), s.bias, s.train_output_weights)
    if cfg.problem.dataset in DATASET_SHAPES:  # K outputs: output weights (n_L, K)
        n += s.width * (DATASET_SHAPES[cfg.problem.dataset][2] - 1)
    return n


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024:
            return f"{int(b)} B" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.3g} EiB"


def _check_sizes(cfg: Config, n_rows: int | None = None) -> None:
    """Refuse sizes whose unavoidable memory exceeds :func:`memory_limit` (one line naming the key to lower).

    Lower bounds, in float64 words, for P trainable parameters, student widths m_l (m = their sum), teacher width k,
    n samples (``n_rows`` of ``problem.data_file`` when given), S snapshots: one dense Hessian P^2; its P tangents
    pushed through the loss by ``jax.hessian`` P n m (sample) or P m (m + k) (population; measured peaks are several
    times these); the population kernel matrices (m + k)^2; the sample and one layer of activations
    n (d + 1 + max width); the snapshots of one trajectory S (4 [+ P with ``save_params``]); the arrays one grid point
    keeps for ``arrays.npz``, count (1 + 3 P + 4 S [+ S P]).
    """
    p, t, s, fl = cfg.problem, cfg.teacher, cfg.student, cfg.flow
    mem = memory_limit()
    have = f"{_fmt_bytes(mem)} of memory on this machine"
    d = p.input_dim
    s_widths, t_widths = _layer_widths(s.hidden_widths, s.width), _layer_widths(t.hidden_widths, t.width)

    def blame(owner: str, widths: list[int], width: int) -> tuple[str, str]:
        """How the size of a network reads (with context), and the key to lower."""
        if len(widths) > 1:
            return f"{owner}.hidden_widths = {widths}", f"{owner}.hidden_widths"
        if width >= d:
            return f"{owner}.width = {width} (with problem.input_dim = {d})", f"{owner}.width"
        return f"problem.input_dim = {d} (with {owner}.width = {width})", "problem.input_dim"

    P = count_trainable(cfg)
    what, key = blame("student", s_widths, s.width)
    if 8 * P * P > mem:
        raise ConfigError(f"{what} gives {P} trainable parameters; one dense float64 Hessian ({P} x {P}) needs "
                          f"{_fmt_bytes(8 * P * P)} > {have}; lower {key}")
    P_t = _count_params(d, t_widths, t.bias, True)
    if 8 * P_t > mem:
        t_what, t_key = blame("teacher", t_widths, t.width)
        raise ConfigError(f"{t_what} gives {P_t} teacher parameters; they need {_fmt_bytes(8 * P_t)} > {have}; "
                          f"lower {t_key}")
    m = sum(s_widths)
    if p.loss == "population":
        k = t.width
        width_key = "student.width" if m >= k else "teacher.width"
        need = 8 * (m + k) ** 2
        if need > mem:
            raise ConfigError(f"student.width = {m} and teacher.width = {k}: the population loss's kernel matrices "
                              f"need {_fmt_bytes(need)} > {have}; lower {width_key}")
        need = 8 * P * m * (m + k)
        if need > mem:
            raise ConfigError(f"{what} gives {P} trainable parameters; the Hessian of one point pushes {P} tangents "
                              f"through the population loss's {m} x {m + k} kernel matrices: at least "
                              f"{_fmt_bytes(need)} > {have}; lower {key if m >= k else width_key}")
    else:
        n = p.n_samples if n_rows is None else n_rows
        n_key = "problem.n_samples" if n_rows is None else f"the rows of problem.data_file {p.data_file!r}"
        widest = max(s_widths + t_widths)
        need = 8 * n * (d + 1 + widest)
        if need > mem:
            big = max([(n_key, n), ("problem.input_dim", d),
                       ("student.width" if max(s_widths) >= max(t_widths) else "teacher.width", widest)],
                      key=lambda kv: kv[1])[0]
            n_desc = f"problem.n_samples = {n}" if n_rows is None else f"problem.data_file {p.data_file!r} ({n} rows)"
            raise ConfigError(f"{n_desc} inputs of problem.input_dim = {d} with layers of up to {widest} units need "
                              f"{_fmt_bytes(need)} for the sample and one layer of activations > {have}; lower {big}")
        need = 8 * P * n * m
        if need > mem:
            s_key = "student.hidden_widths" if len(s_widths) > 1 else "student.width"
            n_desc = f"problem.n_samples = {n}" if n_rows is None else f"the {n} rows of problem.data_file"
            raise ConfigError(f"the Hessian of one point pushes its {P} tangents (trainable parameters) through {m} "
                              f"hidden units ({s_key}) on {n_desc} samples: at least {_fmt_bytes(need)} > {have}; "
                              f"lower {n_key} or {s_key}")
    S = fl.n_snapshots
    need = 8 * S * (4 + (P if fl.save_params else 0))
    save = " (or set flow.save_params = false)" if fl.save_params else ""
    if need > mem:
        raise ConfigError(f"flow.n_snapshots = {S} snapshots of one trajectory need {_fmt_bytes(need)} > {have}; "
                          f"lower flow.n_snapshots{save}")
    need = 8 * cfg.init.count * (1 + 3 * P + 4 * S + (S * P if fl.save_params else 0))
    if need > mem:
        raise ConfigError(f"init.count = {cfg.init.count} initialisations with flow.n_snapshots = {S} keep "
                          f"{_fmt_bytes(need)} of arrays per grid point (parameters, eigenvalues, curves), gathered in "
                          f"memory for arrays.npz, > {have}; lower init.count or flow.n_snapshots{save}, or split the "
                          "run into grid points with a [sweep] over init.seed")


# ---------------------------------------------------------------------------------------------------------------
# input files: read and checked at validation, so a bad file is refused before anything runs


def _stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None  # the reader raises the error (and nothing is cached)
    return st.st_mtime_ns, st.st_size, st.st_ino


@functools.lru_cache(maxsize=16)
def _read_teacher_file(path: str, stamp) -> Teacher:
    return Teacher.from_file(path)


@functools.lru_cache(maxsize=16)
def _data_file_rows(path: str, stamp, input_dim: int) -> int:
    from .problem.data import read_inputs

    return int(read_inputs(path, input_dim)[0].shape[0])


def _teacher_from_file(t: TeacherConfig, p: ProblemConfig) -> Teacher:
    """The teacher of ``teacher.file``, checked against the config's sizes; each problem one ConfigError line."""
    try:
        teacher = _read_teacher_file(t.file, _stamp(t.file))
    except (OSError, ValueError) as e:  # "teacher file 'x' ..." from the library: name the key instead
        msg = str(e)
        raise ConfigError("teacher.file " + msg.removeprefix("teacher file ") if msg.startswith("teacher file ")
                          else f"teacher.file: {msg}") from None
    w = teacher.params["w"]
    if tuple(w.shape) != (t.width, p.input_dim):
        raise ConfigError(f"teacher.file {t.file!r} has w of shape {tuple(w.shape)}; the config needs (teacher.width, "
                          f"problem.input_dim) = ({t.width}, {p.input_dim}): set them to match the file")
    if t.bias and not teacher.bias:
        raise ConfigError(f"teacher.bias = true but teacher.file {t.file!r} has no array 'b'; add b ({t.width},) to "
                          "the file or set teacher.bias = false")
    return teacher


def _check_files(cfg: Config, act) -> tuple[list | None, int | None]:
    """Read and check ``teacher.file`` and ``problem.data_file``: (the file teacher's output weights, data rows)."""
    p, t = cfg.problem, cfg.teacher
    teacher_a = None
    if t.kind == "file":
        teacher = _teacher_from_file(t, p)
        if p.loss == "population" and teacher.bias and not act.smooth:
            raise ConfigError(f"teacher.file {t.file!r} has biases 'b', but problem.loss = \"population\" with "
                              f"activation {act.label!r} is exact only without biases; use loss = \"sample\" or drop "
                              "'b' from the file")
        teacher_a = [float(v) for v in teacher.params["a"]]
    n_rows = None
    if p.data_file:
        try:
            n_rows = _data_file_rows(p.data_file, _stamp(p.data_file), p.input_dim)
        except (OSError, ValueError) as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("problem.data_file") else f"problem.data_file: {msg}") from None
    return teacher_a, n_rows


def _parse_value(text: str):
    """Parse the right-hand side of ``--set key=value`` as a TOML value, falling back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` overrides (values in TOML syntax) to a raw config dict, returning a copy."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r} must look like section.key=value, e.g. --set init.count=16")
        path, text = item.split("=", 1)
        section, key = path.strip().split(".", 1)
        if section not in SECTIONS and section != "sweep":
            raise ConfigError(f"--set {item!r}: unknown section [{section}]; valid sections: {', '.join(SECTIONS)}")
        out.setdefault(section, {})[key.strip()] = _parse_value(text.strip())
    return out


def read_raw_config(path: str | Path, overrides=()) -> dict:
    """The parsed TOML dict of ``path`` with ``--set`` overrides applied (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; pass the path of a TOML file (see configs/)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return apply_overrides(raw, list(overrides or []))


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a TOML config file, apply ``--set`` overrides and validate it."""
    return config_from_dict(read_raw_config(path, overrides or []))


def config_to_dict(cfg: Config) -> dict:
    """The resolved config as a plain dict (every default filled in)."""
    d = {name: dataclasses.asdict(getattr(cfg, name)) for name in SECTIONS}
    if cfg.sweep:
        d["sweep"] = cfg.sweep
    return d


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def config_to_toml(cfg: Config | dict) -> str:
    """Write a resolved config as TOML text that :func:`load_config` reads back to the same config."""
    d = config_to_dict(cfg) if isinstance(cfg, Config) else cfg
    lines = []
    for section, table in d.items():
        lines.append(f"[{section}]")
        for k, v in table.items():
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# strings -> objects

ACTIVATION_NAMES = ("relu", "leaky_relu(alpha)", "relu^p", "softplus", "tanh", "erf", "sigmoid", "sigmoid4_softplus")
_SIMPLE = {"relu": A.ReLU, "softplus": A.Softplus, "tanh": A.Tanh, "erf": A.Erf, "sigmoid": A.Sigmoid,
           "sigmoid4_softplus": A.Sigmoid4Softplus}
_LEAKY_RE = re.compile(r"^leaky_relu\(\s*([-+0-9.eE]+)\s*\)$")
_POWER_RE = re.compile(r"^relu\^\s*([0-9]+)$")


def parse_activation(spec: str) -> A.AbstractActivation:
    """Parse an activation name as written in configs, e.g. ``"relu"``, ``"leaky_relu(0.1)"``, ``"relu^2"``.

    Raises ``ValueError`` with the accepted names if ``spec`` is not one of them.
    """
    s = spec.strip().lower()
    if s in _SIMPLE:
        return _SIMPLE[s]()
    if s == "leaky_relu":
        return A.LeakyReLU(0.01)
    m = _LEAKY_RE.match(s)
    if m:
        return A.LeakyReLU(float(m.group(1)))
    m = _POWER_RE.match(s)
    if m:
        p = int(m.group(1))
        if p < 1:
            raise ValueError(f"relu^p needs an integer p >= 1, got {p}")
        return A.ReLU() if p == 1 else A.ReLUPower(p)
    raise ValueError(f"unknown activation {spec!r}; use one of: {', '.join(ACTIVATION_NAMES)}")


def build_problem(cfg: Config) -> TeacherStudent:
    """The :class:`landscape.TeacherStudent` described by ``cfg``.

    Randomness: the teacher uses ``teacher.seed``, the sample ``problem.data_seed``; both are independent of the
    initialisation seed, so a sweep over initialisations shares one problem.
    """
    import jax

    from .problem.data import load_inputs

    p, t, s = cfg.problem, cfg.teacher, cfg.student
    act = parse_activation(p.activation)
    if p.dataset:
        return _build_supervised(cfg, act)
    key = jax.random.PRNGKey(t.seed)
    if len(t.hidden_widths) > 1 or t.kind == "gaussian":
        teacher = Teacher.gaussian(p.input_dim, t.width, key=key, output_weights=t.output_weights, bias=t.bias,
                                   hidden_widths=tuple(t.hidden_widths) if len(t.hidden_widths) > 1 else ())
    elif t.kind == "orthonormal":
        teacher = Teacher.orthonormal(p.input_dim, t.width, key=key, output_weights=t.output_weights)
    else:
        teacher = _teacher_from_file(t, p)
    teacher = teacher.with_activation(act)
    if len(s.hidden_widths) > 1:
        student = MLP(tuple(s.hidden_widths), act, s.bias, p.input_dim)
    else:
        student = TwoLayer(s.width, act, s.bias, p.input_dim)
    if p.loss == "sample":
        if p.data_file:
            try:
                x, y = load_inputs(p.data_file, p.input_dim)
            except (OSError, ValueError) as e:
                raise ConfigError(str(e)) from None
            loss = SampleLoss(x, y)
        else:
            loss = SampleLoss.gaussian(p.n_samples, p.input_dim, key=jax.random.PRNGKey(p.data_seed))
    else:
        loss = PopulationLoss(p.quadrature_order or None)
    frozen = None if s.train_output_weights else s.output_weights
    try:
        return TeacherStudent(teacher, student, loss, output_weights=frozen)
    except ValueError as e:  # loss/network/output-weight mismatches the validation did not foresee: still one line
        raise ConfigError(f"cannot build the problem of this config: {e}") from None


def _build_supervised(cfg: Config, act):
    """The :class:`landscape.problem.datasets.Supervised` problem of ``problem.dataset`` (one-hot targets)."""
    from .problem.datasets import Supervised

    p, s = cfg.problem, cfg.student
    outputs = DATASET_SHAPES[p.dataset][2]
    net = MLP(tuple(s.hidden_widths) if s.hidden_widths else (s.width,), act, s.bias, p.input_dim, outputs)
    try:
        if p.dataset == "digits":
            return Supervised.digits(net, n=p.n_samples)
        return Supervised.mnist(net, p.data_path, n=p.n_samples)
    except (OSError, ValueError) as e:
        raise ConfigError(str(e)) from None


_OPTAX = {"gd": ("sgd", ("learning_rate",)), "momentum": ("sgd", ("learning_rate", "momentum")),
          "adam": ("adam", ("learning_rate",))}


def build_flow(f: FlowConfig, *, solver=None):
    """The flow of a ``[flow]`` section: :class:`landscape.GradientFlow` or :class:`landscape.OptaxFlow`.

    Static (a new compilation when changed): method, n_snapshots, save_params, max_steps, segment_steps (gradient
    flow). Traced (a sweep over them reuses one compilation): t_max, grad_tol, rtol, atol, lr, momentum, steps,
    segment_steps (optax methods).
    """
    if f.method == "gradient_flow":
        return GradientFlow(f.t_max, grad_tol=f.grad_tol, rtol=f.rtol, atol=f.atol, max_steps=f.max_steps,
                            segment_steps=f.segment_steps, n_snapshots=f.n_snapshots, save_params=f.save_params,
                            solver=solver)
    if f.method in _OPTAX:
        import optax

        factory, names = _OPTAX[f.method]
        values = {"learning_rate": f.lr, "momentum": f.momentum}
        return OptaxFlow(getattr(optax, factory), steps=f.steps, grad_tol=f.grad_tol, segment_steps=f.segment_steps,
                         n_snapshots=f.n_snapshots, save_params=f.save_params, **{k: values[k] for k in names})
    raise ConfigError(f"flow.method = {f.method!r} is not valid; use one of: {', '.join(CHOICES[('flow', 'method')])}")


_INITS = {"gaussian": GaussianInit, "orthogonal": OrthogonalInit, "sphere": SphereInit}


def build_init(i: InitConfig):
    """The initialisation strategy of an ``[init]`` section (scale traced)."""
    return _INITS[i.distribution](i.scale)


def build_polish(po: PolishConfig) -> Polish:
    """The certification settings of a ``[polish]`` section."""
    return Polish(po.tol, max_iter=po.max_iter, enabled=po.enabled, handoff_tol=po.handoff_tol or None,
                  segment_iters=po.segment_iters)


ANALYZERS = {
    "hessian": lambda an: HessianSpectrum(),
    "symmetry": lambda an: SymmetryAnalysis(an.zero_tol, an.global_loss_tol),
    "classify": lambda an: Classify(zero_tol=an.zero_tol, global_loss_tol=an.global_loss_tol),
    "isotropy": lambda an: IsotropyAnalyzer(),
}
"""Built-in analyzers by config name; ``"module:Class"`` names an analyzer class outside the package."""


def _import_analyzer(spec: str) -> AbstractAnalyzer:
    module, _, name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"analysis.analyzers: cannot import {spec!r} ({e}); give \"module:Class\" of an "
                          "importable AbstractAnalyzer subclass") from None
    if not (isinstance(cls, type) and issubclass(cls, AbstractAnalyzer)):
        raise ConfigError(f"analysis.analyzers: {spec!r} is not a subclass of landscape.AbstractAnalyzer")
    try:
        return cls()
    except TypeError as e:
        raise ConfigError(f"analysis.analyzers: {spec!r} cannot be built without arguments ({e})") from None


def build_analyzers(an: AnalysisConfig) -> tuple:
    """The analysis stage of an ``[analysis]`` section, in order; each bad entry is one :class:`ConfigError` line."""
    names = an.analyzers
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"analysis.analyzers = {names!r} must be a non-empty list of names, e.g. "
                          "[\"hessian\", \"symmetry\", \"classify\"]")
    out = []
    for name in names:
        if name in ANALYZERS:
            out.append(ANALYZERS[name](an))
        elif ":" in name:
            out.append(_import_analyzer(name))
        else:
            raise ConfigError(f"analysis.analyzers: unknown analyzer {name!r}; use {', '.join(ANALYZERS)} or "
                              "\"module:Class\"")
    order = [a.name for a in out]
    if "classify" not in order or "hessian" not in order or order.index("hessian") > order.index("classify"):
        raise ConfigError("analysis.analyzers must contain \"hessian\" and then \"classify\" (results are classified "
                          "from the Hessian spectrum)")
    if "symmetry" in order and not order.index("hessian") < order.index("symmetry") < order.index("classify"):
        raise ConfigError("analysis.analyzers: put \"symmetry\" between \"hessian\" and \"classify\"")
    if len(set(order)) != len(order):
        raise ConfigError(f"analysis.analyzers = {names!r} lists an analyzer twice")
    return tuple(out)


@dataclass(frozen=True)
class Built:
    """Everything :func:`landscape.explore` needs for one config: ``explore(built.problem, built.flow, ...)``."""

    problem: Any
    flow: Any
    init: Any
    polish: Polish
    analyzers: tuple
    seed: int
    count: int


def build(cfg: Config, *, problem=None) -> Built:
    """Resolve a validated config into library objects (``problem`` reuses an already built problem)."""
    problem = build_problem(cfg) if problem is None else problem
    analyzers = build_analyzers(cfg.analysis)
    if cfg.analysis.analyzers == AnalysisConfig().analyzers and has_symmetry(problem):  # issue 12: S_k x S_d
        analyzers = (*analyzers, IsotropyAnalyzer())
    return Built(problem=problem, flow=build_flow(cfg.flow), init=build_init(cfg.init), polish=build_polish(cfg.polish),
                 analyzers=analyzers, seed=cfg.init.seed, count=cfg.init.count)
