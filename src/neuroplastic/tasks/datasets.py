"""Classification datasets: generated shells, sklearn digits, the user's .npz, MNIST IDX files.

Every loader returns a `Dataset`: float32 features, int64 labels, a train/test split and,
where the inputs have a geometry (pixels), the 2-D position of every input feature.
"""
from __future__ import annotations

import gzip
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    positions: np.ndarray | None = None   # (n_features, 2) input coordinates, or None

    @property
    def n_in(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def _split(name, x, y, positions, test_fraction: float, seed: int) -> Dataset:
    if np.asarray(x).dtype.kind == "c":
        raise ConfigError(f"{name}: X is complex; give real features (e.g. np.abs(X) or real and imaginary parts)")
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: X must be a numeric array of equal-length rows") from None
    if x.ndim == 3 and positions is None:  # (n, height, width) images: inputs sit at their pixels
        positions = grid_positions(*x.shape[1:])
    if x.ndim == 0 or not x.size:
        raise ConfigError(f"{name}: X must be a non-empty (n_samples, n_features) array")
    x = x.reshape(len(x), -1)
    if not np.isfinite(x).all():
        raise ConfigError(f"{name}: X holds {int((~np.isfinite(x)).sum())} NaN or infinite values")
    y = np.asarray(y)
    if y.ndim > 1 and any(n != 1 for n in y.shape[1:]):
        raise ConfigError(f"{name}: y has shape {y.shape}; expected one class label per sample "
                          "(for one-hot rows use y.argmax(1))")
    y = y.reshape(-1)
    if len(x) != len(y):
        raise ConfigError(f"{name}: X has {len(x)} rows but y has {len(y)}")
    if y.dtype.kind in "USOb":  # names (or booleans) of classes: ids in sorted order
        try:
            y = np.unique(y, return_inverse=True)[1]
        except TypeError:
            raise ConfigError(f"{name}: labels y mix types that cannot be ordered") from None
    elif not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(np.equal(np.mod(y, 1), 0)):
            raise ConfigError(f"{name}: labels y must be integers (class ids) or class names")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise ConfigError(f"{name}: labels must be >= 0, found {int(y.min())}")
    distinct = len(np.unique(y))
    if distinct < 2:
        raise ConfigError(f"{name}: y holds a single class ({int(y[0])}); classification needs at least two")
    if int(y.max()) >= len(y):  # one output neuron per class id: ids far apart would make millions
        raise ConfigError(f"{name}: labels run up to {int(y.max())} for {len(y)} samples and {distinct} classes; "
                          "give class ids 0..K-1 (e.g. np.unique(y, return_inverse=True)[1])")
    if positions is not None:
        positions = np.asarray(positions, dtype=np.float32)
        if positions.shape != (x.shape[1], 2):
            raise ConfigError(f"{name}: positions has shape {positions.shape}, expected ({x.shape[1]}, 2) "
                              "(one 2-D coordinate per input feature)")
        if not np.isfinite(positions).all():
            raise ConfigError(f"{name}: positions hold NaN or infinite values")
    if len(x) < 4:
        raise ConfigError(f"{name}: needs at least 4 samples, got {len(x)}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    test, train = order[:n_test], order[n_test:]
    return Dataset(name, x[train], y[train], x[test], y[test], positions)


def shells(n_train: int = 10_000, n_test: int = 2_000, dim: int = 10, n_shells: int = 3,
           width: float = 0.05, seed: int = 0) -> Dataset:
    """Points uniform on concentric spheres of radius 1..n_shells (+-U(width)); label = shell."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    labels = rng.integers(0, n_shells, n)
    direction = rng.normal(size=(n, dim))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = labels + 1 + rng.uniform(-width, width, n)
    x = (direction * radius[:, None]).astype(np.float32)
    return Dataset("shells", x[:n_train], labels[:n_train], x[n_train:], labels[n_train:], None)


def grid_positions(height: int, width: int) -> np.ndarray:
    """(row, column) of each pixel of a row-major height x width image."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows.reshape(-1), cols.reshape(-1)], 1).astype(np.float32)


def digits(seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """sklearn's 8x8 handwritten digits (1797 images), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    data = load_digits()
    return _split("digits", data.data / 16.0, data.target, grid_positions(8, 8), test_fraction, seed)


NPZ_FORMAT = ("an archive of numeric arrays as np.savez(FILE, X=X, y=y) writes it: X of shape (n, d) "
              "or (n, h, w) (more axes are flattened per sample), "
              "y of n class ids or names, optionally positions of shape (d, 2)")


def npz_arrays(path, expected: str) -> dict:
    """Every array of the .npz file `path` (for --data; `expected` says what it should hold).
    Only plain arrays are read: a file that holds Python objects is refused, never unpickled."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--data {str(path)!r} does not exist")
    if path.is_dir() or not zipfile.is_zipfile(path):
        raise ConfigError(f"--data {str(path)!r} is not a readable .npz file; it should be {expected}")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as f:
            for key in f.files:
                try:
                    arrays[key] = f[key]
                except ValueError:  # an object array: numpy would need pickle for it
                    raise ConfigError(f"--data {str(path)!r}: array {key!r} holds Python objects, not numbers; "
                                      f"the file should be {expected}") from None
    except ConfigError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError):
        raise ConfigError(f"--data {str(path)!r} is not a readable .npz file; it should be {expected}") from None
    return arrays


def from_npz(path, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """The user's data: arrays X (n, d) and y (n,), optional positions (d, 2). X of shape
    (n, h, w) is a set of images whose inputs sit at their pixels; any other X of more than two
    axes is flattened per sample, in C order.

    Only plain arrays are read: a file that holds Python objects is refused, never unpickled."""
    path = Path(path)
    arrays = npz_arrays(path, NPZ_FORMAT)
    missing = {"X", "y"} - set(arrays)
    if missing:
        raise ConfigError(f"--data {str(path)!r} lacks array(s) {sorted(missing)}; expected X, y "
                          "and optionally positions")
    return _split(path.stem, arrays["X"], arrays["y"], arrays.get("positions"), test_fraction, seed)


def read_idx(path) -> np.ndarray:
    """An IDX file (MNIST format), optionally gzipped."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"IDX file {str(path)!r} does not exist") from None
    except (OSError, EOFError) as exc:  # gzip: truncated or not gzip at all
        raise ConfigError(f"IDX file {str(path)!r} cannot be read: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ConfigError(f"{str(path)!r} is not an unsigned-byte IDX file")
    ndim = data[3]
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise ConfigError(f"{str(path)!r} is truncated: its IDX header ends before the {ndim} dimension sizes")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ConfigError(f"{str(path)!r} is truncated: header says {shape}, found {body.size} bytes")
    return body.reshape(shape)


def mnist_idx(directory, limit: int | None = None) -> Dataset:
    """MNIST from the four standard IDX files in `directory` (gzipped or not)."""
    directory = Path(directory)

    def find(stem):
        for name in (stem, stem + ".gz"):
            if (directory / name).exists():
                return directory / name
        raise ConfigError(f"{str(directory)!r} lacks {stem}[.gz]")

    xs = [read_idx(find(f"{p}-images-idx3-ubyte")) for p in ("train", "t10k")]
    ys = [read_idx(find(f"{p}-labels-idx1-ubyte")) for p in ("train", "t10k")]
    for p, x, y in zip(("train", "t10k"), xs, ys):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or not len(x):
            raise ConfigError(f"{str(directory)!r}: {p} images have shape {x.shape} and labels {y.shape}; expected "
                              "(n, height, width) images and n labels")
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise ConfigError(f"{str(directory)!r}: train images are {'x'.join(map(str, xs[0].shape[1:]))} pixels but "
                          f"t10k images {'x'.join(map(str, xs[1].shape[1:]))}; both sets must have one size")
    if len(np.unique(ys[0])) < 2:
        raise ConfigError(f"{str(directory)!r}: the train labels hold a single class ({int(ys[0][0])}); "
                          "classification needs at least two")
    if int(ys[1].max()) > int(ys[0].max()):  # classes past every trained one would only ever score 0
        raise ConfigError(f"{str(directory)!r}: t10k labels run up to {int(ys[1].max())} but the train labels only "
                          f"to {int(ys[0].max())}; the test set's classes must be the training set's")
    if limit:
        xs, ys = [x[:limit] for x in xs], [y[:limit] for y in ys]
    h, w = xs[0].shape[1:]
    return Dataset("mnist", xs[0].reshape(len(xs[0]), -1).astype(np.float32) / 255, ys[0].astype(np.int64),
                   xs[1].reshape(len(xs[1]), -1).astype(np.float32) / 255, ys[1].astype(np.int64),
                   grid_positions(h, w))


def load_data(spec: str, seed: int = 0) -> Dataset:
    """'shells', 'digits', a .npz path, or a directory of MNIST IDX files."""
    if spec == "shells":
        return shells(seed=seed)
    if spec == "digits":
        return digits(seed=seed)
    path = Path(spec)
    if path.is_dir():
        return mnist_idx(path)
    if path.suffix == ".npz" or path.exists():
        return from_npz(path, seed=seed)
    raise ConfigError(f"data {spec!r} is neither 'shells', 'digits', an .npz file nor an IDX directory")
