"""Command line: ``landscape run | hessian | count | report | figure | slice | connect``.

Bad input (config keys, values, paths) prints one line starting with ``error:`` and exits with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import errno
import sys

from .config import ConfigError

__all__ = ["main", "build_parser"]


_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}


def add_compile_cache_flag(p) -> None:
    """``--no-compile-cache``: by default a command that compiles uses JAX's persistent compilation cache."""
    p.add_argument("--no-compile-cache", dest="compile_cache", action="store_false",
                   help="do not use the persistent compilation cache (default: $LANDSCAPE_COMPILE_CACHE or "
                        "~/.cache/landscape/jax; LANDSCAPE_COMPILE_CACHE=off disables it everywhere)")


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2."""


def _add_run(sub):
    p = sub.add_parser("run", help="run gradient flows from many initialisations, certify and classify end points")
    p.add_argument("config", help="TOML config file (see configs/)")
    p.add_argument("--out", default=None, help="results directory (default: results/<config name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (TOML syntax), e.g. --set init.count=16; repeatable")
    p.add_argument("--dry-run", action="store_true", help="print the expanded grid and sizes; run nothing")
    p.add_argument("--force", action="store_true", help="start over in an existing results directory")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="where chunks run (default local)")
    p.add_argument("--address", default=None, help="Ray cluster address for --executor ray (default: local Ray)")
    p.add_argument("--chunk-size", type=int, default=None, help="initialisations per chunk (default: automatic)")
    p.add_argument("--no-figures", action="store_true", help="skip drawing figures at the end")
    add_compile_cache_flag(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from .report.finalize import finalize
    from .sweep.runner import run_sweep

    return run_sweep(
        args.config,
        overrides=args.overrides,
        out_dir=args.out,
        force=args.force,
        dry_run=args.dry_run,
        executor=args.executor,
        address=args.address,
        chunk_size=args.chunk_size,
        figures=not args.no_figures,
        on_complete=finalize,  # summary.json, figures and the printed summary: the report's job, not the sweep's
    )


def _add_hessian(sub):
    p = sub.add_parser("hessian", help="print one end point's Hessian eigenvalues with multiplicities")
    p.add_argument("result_dir", help="results directory written by 'landscape run'")
    p.add_argument("--point", type=int, required=True, help="initialisation id of the point")
    p.add_argument("--grid-point", type=int, default=None, help="grid point of a sweep (default: the only one)")
    p.add_argument("--json", action="store_true", help="print JSON (full sorted eigenvalues under 'eigenvalues')")
    p.add_argument("--spectrum", choices=("stored", "auto", "dense", "lanczos"), default="stored",
                   help="recompute the spectrum: dense eigh, matrix-free Lanczos extremes, or auto (by size)")
    p.set_defaults(func=_hessian)


def _hessian(args) -> int:
    from .report.hessian_cmd import main

    return main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landscape",
        description="Explore teacher-student loss landscapes: flows, certified critical points, Hessian spectra.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_hessian(sub)
    from .report import connect_cmd, count, figure_cmd, slice_cmd, sweep_report

    count.add_parser(sub)
    slice_cmd.add_parser(sub)
    connect_cmd.add_parser(sub)
    sweep_report.add_parser(sub)
    figure_cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "compile_cache", False):
        from .store.compile_cache import enable_compile_cache

        enable_compile_cache()
    from .flow.lanes import use_cpu_cores

    try:
        use_cpu_cores()  # before any computation: the batch's lanes spread over the cores (flow.lanes)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except OSError as e:  # a file that cannot be written or read (the store's own errors say more)
        if e.errno not in _WRITE_ERRNOS:
            raise
        where = f": {e.filename}" if e.filename else ""
        print(f"error: {e.strerror}{where}; check permissions and free space, or choose another path", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished chunks are kept, re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
