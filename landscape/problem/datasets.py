"""Real data without a teacher: scikit-learn's bundled digits, MNIST from IDX files, and a supervised problem.

    L(theta) = 1/(2n) sum_i |f(x_i; theta) - y_i|^2,   y_i = the label (one output) or its one-hot vector (K outputs)

- :func:`load_digits`: the 1797 8x8 digit images bundled inside scikit-learn (no download), pixels scaled to [0, 1].
- :func:`read_idx` / :func:`load_mnist`: the standard MNIST IDX files (``train-images-idx3-ubyte`` etc., plain or
  ``.gz``) from a directory the user gives; every way a file can be wrong is one ``ValueError`` line naming it.
- :class:`Supervised`: a network fitted to (x, y) by the squared loss, with the interface the flows, the Hessian and
  the local-dimension analysis use (``loss``, ``predict``, ``trainable_shapes``, ``student``, ``x``, ``y``): one
  parameter set per call, vmap outside. Data arrays are traced leaves; the network is static.

Used by the local-dimension experiments (README, science section 4: Bona-Pellissier, Malgouyres & Bachoc 2024 train
deep ReLU nets on MNIST).

Example:
    >>> import jax, landscape as ls
    >>> from landscape.problem.datasets import Supervised
    >>> problem = Supervised.digits(ls.MLP((8, 8), outputs=10), n=100)
    >>> problem.x.shape, problem.y.shape, problem.trainable_shapes["a"]
    ((100, 64), (100, 10), (8, 10))
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .networks import Network

__all__ = ["load_digits", "read_idx", "write_idx", "load_mnist", "one_hot", "Supervised", "DATASETS",
           "MNIST_FILES"]

DATASETS = ("digits", "mnist")
"""Names accepted by ``problem.dataset`` in configs (:func:`landscape.config.build_problem`)."""

# IDX element type codes (LeCun's format): code -> big-endian numpy dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""Standard MNIST file names per split (each may also end in ``.gz``)."""


def load_digits(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The scikit-learn digits (8x8 images of 0..9, 1797 samples, shipped in the wheel): ``(x, labels)``.

    Args:
        n: keep the first n samples (None: all 1797).

    Returns:
        ``x`` (n, 64) float64 pixel intensities in [0, 1] (the raw 0..16 values divided by 16), ``labels`` (n,) int.

    Example:
        >>> from landscape.problem.datasets import load_digits
        >>> x, labels = load_digits()
        >>> x.shape, labels[:5].tolist(), float(x.max())
        ((1797, 64), [0, 1, 2, 3, 4], 1.0)
    """
    from sklearn.datasets import load_digits as _sk_digits

    x, labels = _sk_digits(return_X_y=True)
    if n is not None:
        if not 1 <= int(n) <= len(labels):
            raise ValueError(f"digits has {len(labels)} samples; n = {n} must be in [1, {len(labels)}]")
        x, labels = x[: int(n)], labels[: int(n)]
    return np.asarray(x, float) / 16.0, np.asarray(labels, int)


def _open_bytes(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when it starts with the gzip magic number."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file {str(path)!r} not found; give the path of an existing IDX file") from None
    except OSError as e:
        raise ValueError(f"IDX file {str(path)!r} cannot be read ({e.strerror}); check its permissions") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"IDX file {str(path)!r} is a damaged gzip archive ({e}); download it again") from None
    return raw


def read_idx(path) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed) into a numpy array of its stored shape and type.

    Format (LeCun et al.): 2 zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions k, k big-endian uint32 sizes, then the data in row-major big-endian order.

    Args:
        path: the file (a ``.gz`` archive is detected from its content, not its name).

    Returns:
        numpy array of shape (n_1, ..., n_k), native byte order.

    Raises:
        FileNotFoundError, ValueError: one line naming the file and what is wrong (bad magic, truncated, ...).

    Example:
        >>> import numpy as np, tempfile, os
        >>> from landscape.problem.datasets import read_idx, write_idx
        >>> path = os.path.join(tempfile.mkdtemp(), "x-idx3-ubyte")
        >>> write_idx(path, np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
        >>> read_idx(path)[1].tolist()
        [[6, 7, 8], [9, 10, 11]]
    """
    path = Path(path)
    raw = _open_bytes(path)
    what = f"IDX file {str(path)!r}"
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{what} does not start with an IDX magic number (00 00 type ndim); give an MNIST IDX file "
                         "such as train-images-idx3-ubyte(.gz)")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{what} has a truncated header ({len(raw)} bytes for {ndim} dimensions); download it again")
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != need:
        raise ValueError(f"{what}: header says shape {shape} ({need} data bytes) but the file holds "
                         f"{len(raw) - header}; the file is truncated or damaged, download it again")
    return np.frombuffer(raw[header:], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array, *, compress: bool = False) -> None:
    """Write ``array`` as an IDX file (gzip-compressed with ``compress``); the inverse of :func:`read_idx`."""
    array = np.asarray(array)
    code = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    Path(path).write_bytes(gzip.compress(data) if compress else data)


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"problem.data_path {str(directory)!r} has no {name} or {name}.gz; give the directory "
                            "holding the MNIST IDX files")


def load_mnist(path, *, split: str = "train", n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from the standard IDX files in the directory ``path``: ``(x, labels)``.

    Args:
        path: directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` (and/or the ``t10k-``
            test files), plain or ``.gz``.
        split: ``"train"`` or ``"test"``.
        n: keep the first n samples (None: all).

    Returns:
        ``x`` (n, rows * cols) float64 in [0, 1] (bytes / 255), ``labels`` (n,) int.

    Raises:
        FileNotFoundError, ValueError: one line naming the file or directory and the fix.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"problem.data_path {str(directory)!r} is not a directory; give the directory "
                                "holding the MNIST IDX files (train-images-idx3-ubyte.gz, ...)")
    if split not in MNIST_FILES:
        raise ValueError(f"MNIST split {split!r}; use 'train' or 'test'")
    images, labels = (read_idx(_find(directory, name)) for name in MNIST_FILES[split])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"MNIST files in {str(directory)!r}: images of shape {images.shape} and labels of shape "
                         f"{labels.shape} do not match (need (n, rows, cols) and (n,))")
    if n is not None:
        if not 1 <= int(n) <= len(labels):
            raise ValueError(f"MNIST {split} has {len(labels)} samples; n = {n} must be in [1, {len(labels)}]")
        images, labels = images[: int(n)], labels[: int(n)]
    x = images.reshape(images.shape[0], -1).astype(float)
    return x / 255.0 if images.dtype == np.uint8 else x, labels.astype(int)


def one_hot(labels, n_classes: int) -> np.ndarray:
    """(n, K) float64 one-hot rows: row i is e_{labels[i]}."""
    labels = np.asarray(labels, int)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels range over [{labels.min()}, {labels.max()}]; they must lie in [0, {n_classes - 1}]")
    return np.eye(n_classes)[labels]


class Supervised(eqx.Module):
    """A network fitted to labelled data by the squared loss, without a teacher; see the module docstring.

        L(theta) = 1/(2n) sum_i |f(x_i; theta) - y_i|^2

    with f a :class:`landscape.MLP` or :class:`landscape.TwoLayer`. ``y`` is (n,) for one output and (n, K) for K
    outputs (one-hot labels). The interface matches :class:`landscape.TeacherStudent` where the flows, the Hessian
    and the local dimension need it, so ``landscape.run_flow(problem, flow, theta0)``, ``GaussianInit(s).sample(key,
    problem)`` and ``landscape.hessian_matrix(problem, theta)`` work unchanged. ONE parameter set per call.

    Args:
        network: the network (static); its ``input_dim`` may be left out (taken from ``x``).
        x: inputs (n, d).
        y: targets (n,) or (n, K), matching the network's outputs.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> from landscape.problem.datasets import Supervised
        >>> problem = Supervised(ls.MLP((3,)), jnp.ones((4, 2)), jnp.zeros(4))
        >>> theta = {"layers": ({"w": jnp.ones((3, 2))},), "a": jnp.ones(3)}   # f = 3 * 2 = 6 on every input
        >>> float(problem.loss(theta))  # 1/2 * 36
        18.0
    """

    network: Network = eqx.field(static=True)
    inputs: jax.Array
    targets: jax.Array

    def __init__(self, network: Network, x, y):
        x, y = jnp.asarray(x, float), jnp.asarray(y, float)
        if x.ndim != 2:
            raise ValueError(f"Supervised: x has shape {tuple(x.shape)}; it needs (n, d)")
        if network.input_dim is None:
            network = dataclasses.replace(network, input_dim=int(x.shape[1]))
        elif network.input_dim != x.shape[1]:
            raise ValueError(f"Supervised: x has {x.shape[1]} columns but the network has input_dim = "
                             f"{network.input_dim}")
        k = int(getattr(network, "outputs", 1))
        want = (x.shape[0],) if k == 1 else (x.shape[0], k)
        if tuple(y.shape) != want:
            raise ValueError(f"Supervised: y has shape {tuple(y.shape)}; the network with {k} output(s) needs {want}")
        self.network, self.inputs, self.targets = network, x, y

    @classmethod
    def digits(cls, network: Network, *, n: int | None = None) -> Supervised:
        """scikit-learn's digits (:func:`load_digits`): one-hot targets for K = 10 outputs, the digit value for 1."""
        x, labels = load_digits(n)
        return cls(network, x, _targets(labels, network))

    @classmethod
    def mnist(cls, network: Network, path, *, split: str = "train", n: int | None = None) -> Supervised:
        """MNIST from the IDX files in directory ``path`` (:func:`load_mnist`), targets as for :meth:`digits`."""
        x, labels = load_mnist(path, split=split, n=n)
        return cls(network, x, _targets(labels, network))

    # the interface shared with TeacherStudent -------------------------------------------------------------------
    @property
    def student(self) -> Network:
        """The trained network (named as in :class:`landscape.TeacherStudent`)."""
        return self.network

    @property
    def x(self) -> jax.Array:
        """Inputs (n, d)."""
        return self.inputs

    @property
    def y(self) -> jax.Array:
        """Targets (n,) or (n, K)."""
        return self.targets

    @property
    def frozen(self) -> dict:
        return {}

    @property
    def loss_kind(self) -> str:
        return "sample"

    @property
    def trainable_shapes(self) -> dict:
        """Shapes of the parameter dict (all parameters are trained)."""
        return self.network.shapes()

    def full_params(self, theta):
        return theta

    def predict(self, theta, x):
        """f(x; theta) for one input x (d,): a scalar or (K,)."""
        return self.network.apply(theta, x)

    def loss(self, theta):
        """1/(2n) sum_i |f(x_i) - y_i|^2 for one parameter set; a float64 scalar (pure, jittable, vmappable)."""
        pred = jax.vmap(lambda x: self.network.apply(theta, x))(self.inputs)
        return 0.5 * jnp.sum((pred - self.targets) ** 2) / self.inputs.shape[0]

    def value_and_grad(self, theta):
        """(L(theta), grad L(theta)) by autodiff (the interface :class:`landscape.TeacherStudent` offers)."""
        return jax.value_and_grad(self.loss)(theta)

    def loss_accurate(self, theta):
        return self.loss(theta)

    def accuracy(self, theta):
        """Fraction of inputs whose largest output is the label (K outputs) or whose rounded output is (one)."""
        pred = jax.vmap(lambda x: self.network.apply(theta, x))(self.inputs)
        if self.targets.ndim == 2:
            return jnp.mean(jnp.argmax(pred, axis=1) == jnp.argmax(self.targets, axis=1))
        return jnp.mean(jnp.round(pred) == self.targets)


def _targets(labels, network: Network) -> np.ndarray:
    k = int(getattr(network, "outputs", 1))
    return np.asarray(labels, float) if k == 1 else one_hot(labels, k)
