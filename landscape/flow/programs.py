"""Programs kept across processes: a second run neither traces nor lowers its hot programs.

JAX's persistent compilation cache (:mod:`landscape.store.compile_cache`) saves XLA's *compilation*; but to find
a program in it JAX must first trace the Python function to a jaxpr and lower it to StableHLO, and for this
package's big programs that costs more than running them: on the quickstart's second run, 6.7 s of tracing and
1.6 s of lowering against about 5 s of work (2-core CPU; the packed flow segment, ``certify`` with its Newton
polishing, the Hessian stage). :func:`persistent_jit` is ``equinox.filter_jit`` that also keeps each traced
program on disk as a serialized :mod:`jax.export` artifact (StableHLO) next to JAX's cache; a later process
with the same *key* deserializes it and calls it (no tracing; XLA's compilation then comes from JAX's cache).

The key must determine the traced program, or a stale entry would silently give other numbers. It is the hash of

- the function (module and qualified name) and a description of every argument: the shape, dtype, weak type and
  device layout (mesh and partition spec) of each array (the traced inputs), and the exact value of everything
  static: Python numbers by ``repr`` (exact
  for floats), strings, ``None``, enums, and the class and fields of every dataclass (equinox modules are
  dataclasses), dict, list and tuple, recursively; a function by its module, name, line and bytecode, and the
  values it closes over;
- the source of this package (every ``.py`` file under ``landscape/``), the versions of the libraries a trace
  runs through (:data:`_LIBRARIES`: jax, jaxlib, equinox, diffrax, optax, matfree, ...), the JAX settings that
  change tracing (x64, matmul precision, dtype promotion, PRNG implementation), and the platform, kinds and
  number of local devices.

Anything else falls back to plain ``filter_jit`` (traced in every process, as before): a class or function
defined outside this package (its source is not in the key), an object of a type the description does not know,
a call inside another trace, or a program JAX cannot export. A fallback is never an error; the numbers are
those of ``filter_jit`` either way (the same jaxpr, compiled by the same XLA). One difference: serialization
drops weak types, so arrays come back strongly typed (the process that exports runs the deserialized program
too, so every process sees the same types; in float64 programs no number changes).

Where: ``programs/BUILD/`` in the directory of JAX's compilation cache, BUILD a hash of the package source and the
library versions; on whenever that cache is on (``landscape run`` and ``landscape figure`` unless given
``--no-compile-cache``; in a notebook :func:`landscape.enable_compile_cache`). The folders of all but the
:data:`KEEP_BUILDS` most recently used builds are deleted, so editing the package does not grow the cache without
bound. Files are written atomically; an unreadable one is traced again and replaced. Like JAX's cache, the folder
holds programs that will run: keep it where only you can write.

Measured (2-core CPU): the quickstart's second run 17.7 s -> 8.3 s of wall time (tracing 6.7 s -> 0.02 s,
lowering 1.6 s -> 0.3 s), with ``points.parquet`` and ``arrays.npz`` bitwise equal to a run without any cache;
``landscape figure directional-convergence --quick`` 10.6 s -> 6.2 s. Each call pays about 0.3 ms more than
``filter_jit`` to describe its arguments, nothing next to the programs it is used for.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib.metadata
import os
import pickle
import shutil
import sys
import tempfile
import types
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

__all__ = ["persistent_jit", "programs_dir", "describe", "Undescribable"]

_PACKAGE = "landscape"
_FORMAT = 1
"""Bumped when the file layout changes."""

_LIBRARIES = ("jax", "jaxlib", "equinox", "diffrax", "optimistix", "lineax", "optax", "matfree", "numpy")
"""Libraries whose code a traced program may contain: their versions are in the key."""
_SETTINGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_numpy_dtype_promotion",
             "jax_numpy_rank_promotion", "jax_default_prng_impl", "jax_threefry_partitionable",
             "jax_use_shardy_partitioner")
_STOPPERS = ("jax_disable_jit", "jax_debug_nans", "jax_debug_infs", "jax_enable_checks")
"""Settings under which a program is traced every time (their checks live in the Python trace)."""


class Undescribable(TypeError):
    """An argument the key cannot describe exactly: the call is traced as usual (module docstring)."""


class _Leaf:
    """Placeholder for an array in a pickled output skeleton."""

    __slots__ = ("i",)

    def __init__(self, i: int):
        self.i = i

    def __getstate__(self):
        return self.i

    def __setstate__(self, i):
        self.i = i


def _ours(module: str | None) -> bool:
    return bool(module) and (module == _PACKAGE or module.startswith(_PACKAGE + "."))


def _is_library(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in _LIBRARIES


def describe(x):
    """A hashable, process-independent description of ``x`` (module docstring); arrays by shape and dtype only.

    Raises:
        Undescribable: for a value whose effect on a traced program the description cannot pin down.

    Example:
        >>> import jax.numpy as jnp
        >>> describe({"a": jnp.zeros((2, 3)), "b": 1.5})
        ('dict', (('a', ('array', (2, 3), 'float64', False, None)), ('b', ('float', '1.5'))))
    """
    if isinstance(x, jax.core.Tracer):
        raise Undescribable("a tracer: called inside another trace")
    if eqx.is_array(x):
        return ("array", tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False)), _sharding(x))
    if x is None or type(x) in (bool, int, float, complex, str, bytes):
        return (type(x).__name__, repr(x))  # repr is exact for floats
    if isinstance(x, np.generic):
        return ("np", str(x.dtype), repr(x.item()))
    if isinstance(x, np.dtype):
        return ("dtype", str(x))
    if isinstance(x, enum.Enum):
        return ("enum", _type_name(type(x)), x.name)
    if isinstance(x, (tuple, list)) and type(x) in (tuple, list):
        return (type(x).__name__, tuple(describe(v) for v in x))
    if isinstance(x, (set, frozenset)) and type(x) in (set, frozenset):
        return (type(x).__name__, tuple(sorted((describe(v) for v in x), key=repr)))
    if type(x) is dict:
        return ("dict", tuple((describe(k), describe(v)) for k, v in sorted(x.items(), key=lambda kv: repr(kv[0]))))
    if isinstance(x, type):
        return ("type", _type_name(x))
    if isinstance(x, types.FunctionType):
        return _describe_function(x)
    if isinstance(x, functools.partial):
        return ("partial", describe(x.func), describe(x.args), describe(dict(x.keywords)))
    if dataclasses.is_dataclass(x):
        name = _type_name(type(x))
        return ("dataclass", name, tuple((f.name, describe(getattr(x, f.name, None)))
                                         for f in dataclasses.fields(x)))
    if isinstance(x, tuple) and hasattr(type(x), "_fields"):  # a NamedTuple of ours
        return ("namedtuple", _type_name(type(x)), tuple(describe(v) for v in x))
    raise Undescribable(f"cannot describe a {type(x).__module__}.{type(x).__qualname__}")


def _spread(x) -> bool:
    """Whether ``x`` is a jax array split or replicated over several devices."""
    return isinstance(x, jax.Array) and len(x.sharding.device_set) > 1


def _sharding(x):
    """None for an array on one device; the mesh and partition spec of one spread over several (a program
    traced for such inputs is partitioned for them)."""
    if not _spread(x):
        return None
    sharding = x.sharding
    if not isinstance(sharding, jax.sharding.NamedSharding):
        raise Undescribable(f"an array with a {type(sharding).__name__}")
    mesh = sharding.mesh
    devices = tuple(d.id for d in np.asarray(mesh.devices).flat)
    return ("named", tuple(mesh.axis_names), tuple(mesh.devices.shape), devices, str(sharding.spec))


def _type_name(t: type) -> str:
    if not (_ours(t.__module__) or _is_library(t.__module__)):
        raise Undescribable(f"{t.__module__}.{t.__qualname__} is defined outside {_PACKAGE}")
    if "<locals>" in t.__qualname__:  # classes made by a function share a name but not their behaviour
        raise Undescribable(f"{t.__module__}.{t.__qualname__} is a local class")
    return f"{t.__module__}.{t.__qualname__}"


def _describe_function(f: types.FunctionType):
    if not (_ours(f.__module__) or _is_library(f.__module__)):
        raise Undescribable(f"function {f.__module__}.{f.__qualname__} is defined outside {_PACKAGE}")
    cells = tuple(describe(c.cell_contents) for c in (f.__closure__ or ()))
    return ("function", f.__module__, f.__qualname__, _code_hash(f.__code__), cells, describe(f.__defaults__),
            describe(f.__kwdefaults__))


def _code_hash(code: types.CodeType) -> str:
    """Bytecode, constants (nested code objects by their own hash), names and first line of a code object."""
    h = hashlib.sha256(code.co_code)
    for c in code.co_consts:
        h.update(_const_repr(c).encode())
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_firstlineno)).encode())
    return h.hexdigest()[:24]


def _const_repr(c) -> str:
    """repr of a code constant that does not change between processes (sets sorted, code objects hashed)."""
    if isinstance(c, types.CodeType):
        return _code_hash(c)
    if isinstance(c, (frozenset, set)):  # string hashing, hence set order, differs between processes
        return "{" + ",".join(sorted(_const_repr(v) for v in c)) + "}"
    if isinstance(c, tuple):
        return "(" + ",".join(_const_repr(v) for v in c) + ")"
    return repr(c)


@functools.cache
def _source_hash() -> str:
    """sha256 of every ``.py`` file of this package (paths and contents)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@functools.cache
def _versions() -> tuple:
    out = [sys.version]
    for name in _LIBRARIES:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


def _context() -> tuple:
    devices = jax.local_devices()
    return (_FORMAT, _source_hash(), _versions(), tuple((s, str(getattr(jax.config, s, None))) for s in _SETTINGS),
            devices[0].platform, tuple(sorted({d.device_kind for d in devices})), len(devices), jax.device_count(),
            os.environ.get("XLA_FLAGS", ""))


KEEP_BUILDS = 4
"""Builds (package source and library versions) whose programs are kept: a process that writes deletes the
folders of older ones, so that editing the package does not grow the cache without bound."""


@functools.cache
def _build() -> str:
    """The folder of this build's programs: a hash of the package source and the library versions."""
    return hashlib.sha256(repr((_FORMAT, _source_hash(), _versions())).encode()).hexdigest()[:16]


_SEEN: set = set()


def _folder(root: Path) -> Path:
    """This build's folder under ``root``; on first use in a process, marked as used and older builds pruned."""
    folder = root / _build()
    if folder not in _SEEN:
        _SEEN.add(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.utime(folder)
            builds = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in builds[KEEP_BUILDS:]:
                if old != folder:
                    shutil.rmtree(old, ignore_errors=True)
        except OSError:  # an unwritable cache: loading still works where files exist, writing fails quietly
            pass
    return folder


def programs_dir() -> Path | None:
    """Where programs are kept: ``programs/`` in JAX's compilation cache directory, or None when that is off."""
    cache = jax.config.jax_compilation_cache_dir
    return Path(cache) / "programs" if cache else None


class _Program:
    """A deserialized program and the skeleton of its outputs; called with the flat dynamic leaves."""

    def __init__(self, exported, skeleton):
        leaves, self.out_tree = jax.tree.flatten(skeleton)
        self.positions = [leaf.i if isinstance(leaf, _Leaf) else None for leaf in leaves]
        self.statics = leaves
        self.replicated = None
        if exported.nr_devices > 1:  # a program over the lanes' mesh (lanes_map): its inputs must span that mesh
            from jax.sharding import Mesh, NamedSharding, PartitionSpec

            mesh = Mesh(np.asarray(jax.local_devices()[: exported.nr_devices]), ("lanes",))
            self.replicated = NamedSharding(mesh, PartitionSpec())

        def call(*xs):
            return exported.call(*xs)

        call.__name__ = call.__qualname__ = f"kept_{exported.fun_name.lstrip('_')}"  # XLA's cache: jit_kept_NAME
        self.call = jax.jit(call)

    def __call__(self, leaves):
        if self.replicated is not None:  # arrays on one device are copied to each (lanes_map splits them inside)
            leaves = [x if isinstance(x, jax.Array) and x.sharding.device_set == self.replicated.device_set
                      else jax.device_put(x, self.replicated) for x in leaves]
        out = self.call(*leaves)
        return jax.tree.unflatten(self.out_tree, [s if p is None else out[p]
                                                  for p, s in zip(self.positions, self.statics, strict=True)])


def persistent_jit(fun):
    """``equinox.filter_jit(fun)`` whose traced programs are kept across processes (module docstring).

    Arrays (jax or numpy) in the arguments are traced, everything else is static, as with ``filter_jit``;
    keyword arguments and calls inside another trace take the plain ``filter_jit`` path.
    """
    jitted = eqx.filter_jit(fun)
    name = f"{fun.__module__}.{fun.__qualname__}"
    memo: dict = {}

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        root = programs_dir()
        if root is None or kwargs or any(getattr(jax.config, s, False) for s in _STOPPERS):
            return jitted(*args, **kwargs)
        try:
            key = (name, describe(args), _context())
        except (Undescribable, RecursionError):  # RecursionError: a self-referencing closure
            return jitted(*args)
        program = memo.get(key)
        if program is None:
            program = _load(root, key) or _export(root, key, fun, args)
            memo[key] = program
        dynamic = jax.tree.leaves(eqx.filter(args, eqx.is_array))
        return jitted(*args) if program is False else program(dynamic)

    wrapper.jitted = jitted
    return wrapper


def _path(root: Path, key) -> Path:
    return _folder(root) / (hashlib.sha256(repr(key).encode()).hexdigest() + ".program")


def _load(root: Path, key):
    path = _path(root, key)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        stored_key, exported, skeleton = pickle.loads(blob)
        if stored_key != repr(key):  # a hash collision, or a file from elsewhere
            return None
        return _Program(jax.export.deserialize(bytearray(exported)), skeleton)
    except Exception:  # noqa: BLE001  a damaged or foreign file: trace again and replace it
        return None


def _export(root: Path, key, fun, args):
    """Trace ``fun`` at ``args`` into an exported program and write it; False when JAX cannot export it."""
    dynamic, static = eqx.partition(args, eqx.is_array)
    leaves, tree = jax.tree.flatten(dynamic)
    box = {}

    def flat(*xs):
        out = fun(*eqx.combine(jax.tree.unflatten(tree, xs), static))
        out_dynamic, box["static"] = eqx.partition(out, eqx.is_array)
        out_leaves, box["tree"] = jax.tree.flatten(out_dynamic)
        return out_leaves

    flat.__name__ = flat.__qualname__ = fun.__name__
    specs = [jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=bool(getattr(x, "weak_type", False)),
                                  sharding=x.sharding if _spread(x) else None) for x in leaves]
    try:
        exported = jax.export.export(jax.jit(flat))(*specs)
    except Exception:  # noqa: BLE001  not exportable (host callbacks, unknown custom calls): traced as usual
        return False
    # the outputs' skeleton: their static parts, and a numbered placeholder where each array goes
    placeholders = jax.tree.unflatten(box["tree"], [_Leaf(i) for i in range(box["tree"].num_leaves)])
    skeleton = eqx.combine(placeholders, box["static"])
    serialized = bytes(exported.serialize())
    # run what a later process will load: serialization drops weak types, and the outputs' types feed later keys
    program = _Program(jax.export.deserialize(bytearray(serialized)), skeleton)
    try:
        blob = pickle.dumps((repr(key), serialized, skeleton))
        path = _path(root, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        finally:  # an interrupt mid-write leaves no partial file behind
            if os.path.exists(tmp):
                os.unlink(tmp)
    except Exception:  # noqa: BLE001  an unwritable cache or an unpicklable skeleton: this process still uses it
        pass
    return program

