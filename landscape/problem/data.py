"""Finite samples of inputs: Gaussian x ~ N(0, I_d) drawn from a seed, or inputs read from an ``.npz`` file.

:func:`read_npz` is the one reader of user ``.npz`` files (data and teacher files): every way a file can be wrong
(missing, not an ``.npz`` archive, object or non-numeric arrays, nan or inf entries) is a one-line
``FileNotFoundError`` / ``ValueError`` naming the file and the fix, never numpy's own message.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["gaussian_inputs", "load_inputs", "read_inputs", "read_npz", "check_finite"]


def gaussian_inputs(key, n_samples: int, input_dim: int) -> jnp.ndarray:
    """n i.i.d. draws x ~ N(0, I_d), shape (n, d)."""
    return jax.random.normal(key, (n_samples, input_dim))


def read_npz(file, what: str, example: str) -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` archive ``file`` as real-valued numpy arrays.

    ``what`` names the file in messages (e.g. ``"teacher file 't.npz'"``), ``example`` is the numpy call that
    writes a good one (e.g. ``"numpy.savez(path, w=w, a=a)"``). Raises ``FileNotFoundError`` if ``file`` does not
    exist, ``ValueError`` (one line) if it is not an ``.npz`` archive or holds non-numeric arrays.
    """
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found; give the path of an existing .npz file")
    not_npz = f"{what} is not an .npz archive; write one with {example}"
    try:
        loaded = np.load(path, allow_pickle=False)
    except PermissionError as e:
        raise ValueError(f"{what} cannot be read ({e.strerror}); check its permissions") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):  # text, pickle, empty or damaged files
        raise ValueError(not_npz) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
        raise ValueError(not_npz)
    try:
        with loaded as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except ValueError:  # object arrays, which only pickle can read
        raise ValueError(f"{what} holds object arrays; store plain numeric arrays with {example}") from None
    except (OSError, EOFError, zipfile.BadZipFile):
        raise ValueError(f"{what} is damaged (an array cannot be read); write it again with {example}") from None
    for k, v in arrays.items():
        if not (np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating)):
            raise ValueError(f"{what}: array {k!r} has dtype {v.dtype}; it must hold real numbers")
    return arrays


def check_finite(what: str, name: str, array) -> None:
    """Raise ``ValueError`` (one line) if ``array`` has nan or inf entries."""
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(f"{what}: {name} has {bad} non-finite (nan or inf) entr{'y' if bad == 1 else 'ies'}; "
                         f"replace {'it' if bad == 1 else 'them'} with finite numbers")


def read_inputs(file, input_dim: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and check ``x`` (n, d) and optional labels ``y`` (n,) from an ``.npz`` file, as numpy arrays.

    Raises ``FileNotFoundError`` or ``ValueError`` (one line naming ``problem.data_file`` and the fix) if the file is
    missing or not an ``.npz`` archive, lacks ``x``, or has arrays of the wrong shape, dtype or with nan/inf entries.
    """
    what = f"problem.data_file {str(file)!r}"
    data = read_npz(file, what, "numpy.savez(path, x=x, y=y)")
    if "x" not in data:
        raise ValueError(f"{what} has no array 'x'; it needs x of shape (n, {input_dim}) and optionally y (n,)")
    x = data["x"]
    if x.ndim != 2 or x.shape[1] != input_dim or x.shape[0] < 1:
        raise ValueError(f"{what}: x has shape {x.shape}, expected (n, {input_dim}) with n >= 1 "
                         "(problem.input_dim is the number of columns)")
    check_finite(what, "x", x)
    y = data.get("y")
    if y is not None:
        if y.shape != (x.shape[0],):
            raise ValueError(f"{what}: y has shape {y.shape}, expected ({x.shape[0]},), one label per row of x")
        check_finite(what, "y", y)
    return x, y


def load_inputs(file, input_dim: int):
    """Read ``x`` (n, d) and optional labels ``y`` (n,) from an ``.npz`` file; returns ``(x, y or None)``.

    The checks and errors of :func:`read_inputs`; the arrays are returned as float64 JAX arrays.
    """
    x, y = read_inputs(file, input_dim)
    return jnp.asarray(x, float), None if y is None else jnp.asarray(y, float)
