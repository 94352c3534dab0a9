"""``landscape figure NAME``: regenerate one paper's figures from a shipped config (or the user's).

Each figure is a function ``make(config_path, out_dir, *, quick) -> list[Path]`` registered in :data:`FIGURES` by
its module path, imported only when that figure is asked for (so one analyzer's heavy imports never slow another).
It runs what it needs through the public API, prints the numbers the figure shows, writes PNGs (and the numbers
as JSON beside them) under ``out_dir`` and returns the paths it wrote. ``--quick`` shrinks the sizes to what a
2-core CPU draws in about a minute (the tests use it); without it the shipped config's sizes are used.

Usage::

    landscape figure --list
    landscape figure saddle-to-saddle [--config configs/saddle_to_saddle.toml] [--out figures/] [--quick]
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FIGURES", "Figure", "add_parser", "main", "make_figure"]


@dataclass(frozen=True)
class Figure:
    """A registered figure: ``target`` is ``"module:function"`` (relative to ``landscape``), ``config`` the
    shipped TOML it runs by default (relative to the repository root, or ``None`` when it needs none)."""

    target: str
    config: str | None
    help: str


FIGURES: dict[str, Figure] = {}
"""Figure name -> :class:`Figure`. Each analyzer's issue adds its own entries below."""
FIGURES["directional-convergence"] = Figure(".report.fig_dynamics:directional_convergence_figure",
                                            "configs/directional_convergence.toml",
                                            "cosine to the nearest KKT point of N and escape time against delta")
FIGURES["saddle-to-saddle"] = Figure(".report.fig_dynamics:saddle_to_saddle_figure", "configs/saddle_to_saddle.toml",
                                     "loss curves from small init. with plateaus certified (index, reduced width)")
FIGURES["spurious-minima"] = Figure(".report.fig_spurious:spurious_minima", "configs/spurious_census.toml",
                                    "spurious-minima rates against d (Wilson intervals) and d * loss of the families")
FIGURES["hessian-spectra"] = Figure(".report.fig_spurious:hessian_spectra", "configs/spurious_census.toml",
                                    "Hessian eigenvalue groups against d, global vs spurious, SLQ density of an MLP")
FIGURES["local-dimension"] = Figure(".report.fig_local_dimension:make", "configs/local_dimension.toml",
                                    "local dimension (Jacobian rank) of a ReLU MLP along training on digits, "
                                    "against flatness and linear regions")
FIGURES["inverse-stability"] = Figure(".report.fig_inverse_stability:make", "configs/inverse_stability.toml",
                                      "parameter / realization distance ratio along each pathology family, and "
                                      "over pairs of certified minima")
FIGURES["connectivity"] = Figure(".report.fig_connectivity:make", "configs/connectivity.toml",
                                 "zero-loss path (m = r*+1) against the NEB barrier and saddle (m = r*), with a slice")


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_config(name: str) -> Path | None:
    """The shipped config of figure ``name``: ``configs/...`` in the checkout (or the working directory)."""
    rel = FIGURES[name].config
    if rel is None:
        return None
    for base in (Path.cwd(), _repo_root()):
        if (base / rel).is_file():
            return base / rel
    return Path(rel)


def make_figure(name: str, *, config: str | Path | None = None, out_dir: str | Path = "figures",
                quick: bool = False) -> list[Path]:
    """Draw figure ``name`` (a key of :data:`FIGURES`) into ``out_dir``; returns the files written."""
    if name not in FIGURES:
        known = ", ".join(sorted(FIGURES)) or "none"
        raise KeyError(f"unknown figure {name!r}; choose one of: {known}")
    fig = FIGURES[name]
    module, func = fig.target.split(":")
    make = getattr(importlib.import_module(module, package="landscape"), func)
    cfg = Path(config) if config is not None else default_config(name)
    if cfg is not None and not cfg.is_file():
        raise FileNotFoundError(f"figure {name}: config file {str(cfg)!r} not found; pass --config PATH")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return list(make(cfg, out, quick=quick))


def add_parser(sub) -> None:
    p = sub.add_parser("figure", help="regenerate a paper's figures (landscape figure --list)")
    p.add_argument("name", nargs="?", help="figure name (see --list)")
    p.add_argument("--list", action="store_true", help="list the figures and their shipped configs")
    p.add_argument("--config", default=None, help="TOML config (default: the figure's shipped config)")
    p.add_argument("--out", default="figures", help="output directory (default: figures/)")
    p.add_argument("--quick", action="store_true", help="small sizes: about a minute on a 2-core CPU")
    p.add_argument("--no-compile-cache", dest="compile_cache", action="store_false",
                   help="do not use the persistent compilation cache")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..config import ConfigError

    if args.list or not args.name:
        for name in sorted(FIGURES):
            fig = FIGURES[name]
            print(f"{name:28s} {fig.help}  [{fig.config or 'no config'}]")
        return 0
    try:
        paths = make_figure(args.name, config=args.config, out_dir=args.out, quick=args.quick)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    for path in paths:
        print(f"wrote {path}")
    return 0
