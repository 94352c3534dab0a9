"""Real data: the IDX reader and MNIST loader on tiny files written here, digits, the supervised problem, configs."""

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape.config import ConfigError, build_problem, config_from_dict
from landscape.problem.datasets import Supervised, load_digits, load_mnist, one_hot, read_idx, write_idx


def _write_mnist(directory, n=5, rows=3, cols=4, *, compress=True, split="train"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    write_idx(directory / f"{prefix}-images-idx3-ubyte{'.gz' if compress else ''}", images, compress=compress)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{'.gz' if compress else ''}", labels, compress=compress)
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_loader_reads_tiny_idx_files(tmp_path, compress):
    images, labels = _write_mnist(tmp_path, compress=compress)
    x, y = load_mnist(tmp_path)
    assert x.shape == (5, 12) and y.tolist() == labels.tolist()
    np.testing.assert_array_equal(x, images.reshape(5, 12) / 255.0)
    x2, y2 = load_mnist(tmp_path, n=2)
    assert x2.shape == (2, 12) and y2.tolist() == labels[:2].tolist()


def test_idx_header_bytes_by_hand(tmp_path):
    # 00 00 0D (float32) 02 dims, sizes 2 and 3 big-endian, then big-endian float32 data
    data = np.arange(6, dtype=">f4")
    raw = bytes([0, 0, 0x0D, 2]) + np.array([2, 3], ">u4").tobytes() + data.tobytes()
    (tmp_path / "f.idx").write_bytes(gzip.compress(raw))
    out = read_idx(tmp_path / "f.idx")
    assert out.shape == (2, 3) and out.dtype == np.float32 and out[1].tolist() == [3.0, 4.0, 5.0]


def test_bad_idx_files_are_one_line_errors(tmp_path):
    images, _ = _write_mnist(tmp_path, compress=False)
    bad = tmp_path / "bad"
    bad.write_bytes(b"hello world")
    with pytest.raises(ValueError, match="magic number") as e:
        read_idx(bad)
    assert "\n" not in str(e.value)
    good = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "cut").write_bytes(good[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "cut")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(good)[:20])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(tmp_path / "broken.gz")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_idx(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(tmp_path / "nowhere")


def test_digits_and_supervised_loss():
    x, labels = load_digits()
    assert x.shape == (1797, 64) and labels.shape == (1797,) and 0.0 <= x.min() and x.max() == 1.0
    problem = Supervised.digits(ls.MLP((6,), outputs=10), n=40)
    assert problem.y.shape == (40, 10) and np.all(np.asarray(problem.y).sum(1) == 1.0)
    np.testing.assert_array_equal(np.argmax(problem.y, 1), labels[:40])
    theta = ls.GaussianInit(1.0).sample(jax.random.key(0), problem)
    pred = np.asarray(jax.vmap(lambda xi: problem.predict(theta, xi))(problem.x))
    assert pred.shape == (40, 10)
    want = 0.5 * np.mean(np.sum((pred - np.asarray(problem.y)) ** 2, axis=1))
    np.testing.assert_allclose(float(problem.loss(theta)), want, rtol=1e-12)
    scalar = Supervised.digits(ls.MLP((6,)), n=40)  # one output: the digit value as the target
    assert scalar.y.shape == (40,) and scalar.trainable_shapes["a"] == (6,)
    assert one_hot([2, 0], 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="y has shape"):
        Supervised(ls.MLP((3,), outputs=2), jnp.ones((4, 2)), jnp.zeros(4))


def test_mlp_outputs_default_keeps_scalar_shapes():
    mlp = ls.MLP((4, 2), input_dim=3)
    assert mlp.shapes()["a"] == (2,)
    params = {"layers": ({"w": jnp.ones((4, 3))}, {"w": jnp.ones((2, 4))}), "a": jnp.ones(2)}
    assert jnp.shape(mlp.apply(params, jnp.ones(3))) == ()
    multi = ls.MLP((4, 2), input_dim=3, outputs=3)
    out = multi.apply({**params, "a": jnp.arange(6.0).reshape(2, 3)}, jnp.ones(3))
    np.testing.assert_allclose(out, 12.0 * np.array([0 + 3, 1 + 4, 2 + 5]))


def test_config_dataset_builds_supervised_problem(tmp_path):
    raw = {"problem": {"input_dim": 64, "dataset": "digits", "loss": "sample", "n_samples": 50},
           "student": {"width": 4, "hidden_widths": [8, 4]}}
    problem = build_problem(config_from_dict(raw))
    assert isinstance(problem, Supervised) and problem.x.shape == (50, 64) and problem.trainable_shapes["a"] == (4, 10)
    _write_mnist(tmp_path, n=6, rows=28, cols=28)
    raw = {"problem": {"input_dim": 784, "dataset": "mnist", "data_path": str(tmp_path), "loss": "sample",
                       "n_samples": 6}, "student": {"width": 3}}
    problem = build_problem(config_from_dict(raw))
    assert problem.x.shape == (6, 784) and problem.y.shape == (6, 10)


@pytest.mark.parametrize("problem, match", [
    ({"dataset": "cifar"}, "problem.dataset = 'cifar' is not valid"),
    ({"dataset": "digits", "input_dim": 10}, "set problem.input_dim = 64"),
    ({"dataset": "digits", "loss": "population"}, 'needs problem.loss = "sample"'),
    ({"dataset": "digits", "n_samples": 5000}, "use at most 1797"),
    ({"dataset": "mnist", "input_dim": 784}, "needs problem.data_path"),
    ({"dataset": "mnist", "input_dim": 784, "data_path": "/no/such/dir"}, "is not a directory"),
])
def test_config_dataset_errors_are_one_line(problem, match):
    raw = {"problem": {"input_dim": 64, "loss": "sample", **problem}, "student": {"width": 3}}
    with pytest.raises(ConfigError, match=match) as e:
        config_from_dict(raw)
    assert "\n" not in str(e.value)
