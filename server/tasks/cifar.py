"""CIFAR-10 image classification: a class-balanced subset, a small CNN or a ResNet-18.

Data
    The official "CIFAR-10 python version" (`cifar-10-python.tar.gz`, 163 MiB, 50,000
    train / 10,000 test images) or any archive/folder in the same format (e.g. a smaller
    subset). `load_cifar10` reads the `.tar.gz` in memory (no extraction) or a
    `cifar-10-batches-py` folder. The pickles are read with a restricted unpickler that
    only rebuilds byte arrays, so numpy is not needed and a tampered file cannot run code.

    Where it is looked for: only in the data folders, `default_data_dir()` (i.e.
    `$PSGD_PLAYGROUND_DATA_DIR` when set, else `~/.cache/psgd-playground/data`) and then
    `$PSGD_PLAYGROUND_EXTRA_DATA_DIR` when set (a read-only copy, e.g. the one the Docker
    image bundles, which a data volume mounted over the data folder does not hide). A
    config names a `dataset` (a file or folder name in a data folder, never a path, so an
    API client cannot make the server read anything else); without one, the first folder
    holding `cifar-10-python.tar.gz` or a `cifar-10-batches-py` folder is used. Only local
    callers (the CLI's `run --data PATH`, scripts) read any path, through `local_data()`.
    Loading refuses anything but regular files and reads at most `MAX_DATASET_BYTES`, and a
    job's errors name the dataset, not where it lies. `download()` (the CLI's
    `psgd-playground data download`) fetches the official archive into the data folder
    and checks its md5.

Task
    The train/test subsets are class-balanced and fixed (seed `SUBSET_SEED`, independent of
    the run seed, so every run of a config sees the same images); the run seed sets the
    model initialisation, the batch order and the augmentation draws. Images stay on the
    device as uint8 and are normalised (CIFAR mean/std) per batch, which keeps 50,000
    images at 150 MiB. `next_batch()` takes the next mini-batch of a per-epoch shuffle (an
    epoch is `ceil(train_size / batch_size)` steps; its last batch is topped up with the
    epoch's first images, so every batch is full) and augments it (random crop with
    4-pixel zero padding in normalised space, i.e. mean colour, and a random horizontal
    flip); `loss()` is then a pure function of that batch and the parameters, so
    optimizers may call it several times per step (Newton fitting, finite differences).
    BatchNorm runs in training mode there (batch statistics; its running statistics are
    updated on every call). `evaluate()` runs in eval mode without
    gradients, in chunks: test loss/accuracy on the test subset, train loss/accuracy on a
    fixed class-balanced sample of `train_eval_size` train images (default 1,000; at most
    `train_size`; no augmentation). The sample has its own bound because it used to be as
    large as the test subset: with test_size 8,000, evaluation took 40–50 % of a run.

Validation split (held-out selection)
    `validation_size` images (a multiple of 10: exactly as many per class) are carved out
    of the `train_size` subset, drawn with their own fixed seed (`VALIDATION_SEED`), so the
    model trains on the other `train_size − validation_size` images, and `evaluate()` adds
    `val_loss` / `val_accuracy` on them. The train-metrics sample is drawn from the images
    trained on, never from the validation ones. The training images do not depend on the
    run seed or on `evaluate_test`: a sweep's trials and its re-runs train on the same ones.
    With `evaluate_test` false the test subset is neither copied nor scored (no `test_*`
    metrics; the target metric is then `val_accuracy`): a sweep's trials run so and select
    on validation, and only its re-runs score the test subset (server/sweeps/validate.py).

Flatness (the seed paper's "flatter minima")
    With `flatness_probes` k > 0 every evaluation also reports the top eigenvalue (k steps
    of power iteration), the trace (Hutchinson, k ±1 probes) and the trace's standard error
    of the Hessian of the training loss on `FLATNESS_IMAGES` fixed class-balanced training
    images (eval mode, no augmentation; probe vectors from `FLATNESS_SEED`), by double
    backward (server/tasks/hessian_probes.py): 2k Hessian-vector products, charged to the
    evaluation's time, not to the optimizer's steps or work counters.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import hashlib
import io
import itertools
import math
import os
import pickle
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from http.client import HTTPException
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.request import urlopen

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor, nn

from server.tasks.base import DTYPES, MemoryPart, Task, TaskConfig, TaskMemory
from server.tasks.hessian_probes import sharpness

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
#: archive names recognised inside a data folder, in order of preference.
ARCHIVE_NAMES = (ARCHIVE_NAME, "cifar-10-subset-python.tar.gz")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
DATA_DIR_ENV = "PSGD_PLAYGROUND_DATA_DIR"
EXTRA_DATA_DIR_ENV = "PSGD_PLAYGROUND_EXTRA_DATA_DIR"

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASSES)
#: per-channel mean and std of the CIFAR-10 training images (pixel values in [0, 1]).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
#: seed of the train/test subset selection (fixed: the data are part of the task).
SUBSET_SEED = 0
#: seed of the validation images' selection within the train subset (fixed likewise)
VALIDATION_SEED = 1
#: the training images whose loss's Hessian `flatness_probes` measures (a fixed
#: class-balanced sample of those trained on, at most all of them) and the seed of the
#: probe vectors: fixed, so every run of a config is measured alike
FLATNESS_IMAGES = 250
FLATNESS_SEED = 2
#: a sweep's validation split when its spec gives none: this share of train_size
SWEEP_VALIDATION_SHARE = 0.1
_CHUNK = 1 << 20
#: the most bytes a dataset may hold (its archive, its unpacked batches, its folder's
#: batch files): the official archive unpacks to 178 MiB.
MAX_DATASET_BYTES = 256 << 20
#: a dataset name: one file or folder name in a data folder, never a path.
DATASET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
DATASET_MAX_LENGTH = 100
#: the fewest images a config may leave to train on once its validation split is carved
MIN_TRAINING_IMAGES = 100
_LOCAL_SOURCE: ContextVar[Path | None] = ContextVar("cifar_local_source", default=None)
#: bytes of the images and labels of the full CIFAR-10 (60,000 images)
FULL_DATASET_BYTES = 60_000 * (3 * 32 * 32 + 8)
#: peak bytes of loading a dataset per byte of its file: the pickles read, their arrays'
#: copies, the tensors (measured: see tests/test_memory_estimate.py)
_LOAD_FACTOR = 3
#: tensors of a layer's output size a training step holds per image (outputs, saved
#: inputs, BatchNorm statistics, max-pool indices, their gradients), measured on small_cnn
_ACTIVATION_FACTOR = 1.5


# ---------------------------------------------------------------------------------------
# Locating, downloading and verifying the data


def default_data_dir() -> Path:
    """`$PSGD_PLAYGROUND_DATA_DIR` when set, else `~/.cache/psgd-playground/data`."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "psgd-playground" / "data"


def data_dirs() -> list[Path]:
    """The folders datasets are looked for in, in order (see the module docstring)."""
    folders = [default_data_dir()]
    extra = os.environ.get(EXTRA_DATA_DIR_ENV)
    if extra:
        folders.append(Path(extra).expanduser())
    return folders


def default_data_path() -> Path:
    """Where a config without `dataset` reads from (see the module docstring)."""
    folders = data_dirs()
    for folder in folders:
        for candidate in (folder / ARCHIVE_NAME, folder / BATCHES_DIR):
            if candidate.exists():
                return candidate
    return folders[0] / ARCHIVE_NAME


@contextlib.contextmanager
def local_data(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Within the block, cifar10 tasks built in this thread read `path` (an archive or a
    folder, anywhere) instead of the data folders: for local runs only, never the API."""
    source = Path(path).expanduser()
    token = _LOCAL_SOURCE.set(source)
    try:
        yield source
    finally:
        _LOCAL_SOURCE.reset(token)


def locate_dataset(name: str | None) -> tuple[Path, str]:
    """The path of a dataset and the label its errors use: the `local_data()` path when
    one is set, else the named file or folder (or the default one) in the data folders.

    The label names the dataset, never a server path: a job's error reaches the client.
    """
    local = _LOCAL_SOURCE.get()
    if local is not None:
        return local, str(local)
    if name is None:
        path = default_data_path()
        if path.exists():
            return path, "default dataset"
        raise FileNotFoundError(
            f"CIFAR-10 not found in this server's data folders (${DATA_DIR_ENV}, "
            f"${EXTRA_DATA_DIR_ENV}): run `psgd-playground data download` there"
        )
    for folder in data_dirs():
        if os.path.lexists(folder / name):
            return folder / name, f"dataset {name!r}"
    raise FileNotFoundError(
        f"dataset {name!r} not found in this server's data folders (${DATA_DIR_ENV}, "
        f"${EXTRA_DATA_DIR_ENV})"
    )


def _missing_message(path: Path) -> str:
    return (
        f"CIFAR-10 data not found at {path}. Download it with `psgd-playground data "
        f"download` (saves {ARCHIVE_NAME} to {default_data_dir()}; set {DATA_DIR_ENV} to "
        f"choose another folder), or pass --data-dir / the path of {ARCHIVE_NAME} or of a "
        f"{BATCHES_DIR} folder."
    )


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: str | os.PathLike[str], expected: str) -> None:
    """Raise ValueError when the md5 of the file at `path` is not `expected`."""
    actual = _md5_of(Path(path))
    if actual != expected.lower():
        raise ValueError(f"md5 mismatch for {path}: expected {expected}, got {actual}")


def download(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    md5: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Fetch the official CIFAR-10 archive into `data_dir` and return its path.

    Skips the download when a file with the right md5 is already there (a wrong one is
    replaced). The archive is streamed to a temporary file in `data_dir`, checked against
    `md5` (default `CIFAR10_MD5`) and only then renamed to `cifar-10-python.tar.gz`; on a
    mismatch the temporary file is deleted and ValueError raised. `progress(done, total)`
    is called after each chunk (total is None when the server sends no length).
    """
    url = CIFAR10_URL if url is None else url
    md5 = CIFAR10_MD5 if md5 is None else md5
    target_dir = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    target = target_dir / ARCHIVE_NAME
    if target.is_file():
        try:
            verify_md5(target, md5)
            return target
        except ValueError:
            pass  # a partial or corrupted earlier file: fetch it again
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{ARCHIVE_NAME}.", suffix=".part", dir=target_dir)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            try:
                with urlopen(url, timeout=60) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length else None
                    done = 0
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
            except (OSError, HTTPException) as e:  # URLError, timeouts, resets
                raise OSError(
                    f"could not download CIFAR-10 from {url}: {e}. Download it by hand and "
                    f"put {ARCHIVE_NAME} in {target_dir}, or pass its path."
                ) from e
        actual = digest.hexdigest()
        if actual != md5.lower():
            raise ValueError(
                f"md5 mismatch for the archive downloaded from {url}: expected {md5}, got "
                f"{actual}; the file was deleted. Try again, or download it by hand."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------------------------------
# Reading the pickles without numpy


class _ArrayStub:
    """Stands in for a numpy array while unpickling; keeps shape, dtype and raw bytes."""

    def __init__(self) -> None:
        self.shape: tuple[int, ...] = ()
        self.dtype: _DTypeStub | None = None
        self.fortran = False
        self.raw = b""

    def __setstate__(self, state: tuple) -> None:
        if len(state) == 5:  # (version, shape, dtype, is_fortran, raw)
            state = state[1:]
        shape, dtype, fortran, raw = state
        if isinstance(raw, str):  # Python 2 str read with encoding="latin1"
            raw = raw.encode("latin1")
        if not isinstance(dtype, _DTypeStub) or not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError("unsupported array state")
        self.shape, self.dtype, self.fortran, self.raw = tuple(shape), dtype, bool(fortran), raw


class _DTypeStub:
    """Stands in for `numpy.dtype`: only plain little-endian integer types are accepted."""

    _TORCH: ClassVar[dict[str, torch.dtype]] = {
        "u1": torch.uint8,
        "i1": torch.int8,
        "i2": torch.int16,
        "i4": torch.int32,
        "i8": torch.int64,
    }

    def __init__(self, spec: str | bytes, align: bool = False, copy: bool = False) -> None:
        self.spec = spec.decode("latin1") if isinstance(spec, bytes) else str(spec)
        self.order = "|"

    def __setstate__(self, state: tuple) -> None:
        order = state[1]
        self.order = order.decode("latin1") if isinstance(order, bytes) else str(order)

    def torch_dtype(self) -> torch.dtype:
        spec = self.spec.lstrip("<|=")
        if self.order == ">" or self.spec.startswith(">") or spec not in self._TORCH:
            raise ValueError(f"unsupported array dtype {self.order}{self.spec}")
        return self._TORCH[spec]


_NDARRAY = object()


def _reconstruct(cls: object, shape: object, typecode: object) -> _ArrayStub:
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("only plain numpy arrays are supported")
    return _ArrayStub()


def _frombuffer(buf: Any, dtype: _DTypeStub, shape: tuple, order: str) -> _ArrayStub:
    stub = _ArrayStub()
    stub.__setstate__((tuple(shape), dtype, order == "F", bytes(buf)))
    return stub


def _scalar(dtype: _DTypeStub, raw: bytes | str) -> int:
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    signed = dtype.torch_dtype() is not torch.uint8
    return int.from_bytes(raw, "little", signed=signed)


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): codecs.encode,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTypeStub,
    **{(m, "_reconstruct"): _reconstruct for m in _NUMPY_MODULES},
    **{(m, "scalar"): _scalar for m in _NUMPY_MODULES},
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _array_to_tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, _ArrayStub):
        assert value.dtype is not None
        dtype = value.dtype.torch_dtype()
        flat = torch.frombuffer(bytearray(value.raw), dtype=dtype)
        if value.fortran:
            dims = len(value.shape)
            return flat.reshape(value.shape[::-1]).permute(*reversed(range(dims))).contiguous()
        return flat.reshape(value.shape)
    if isinstance(value, (list, tuple)):
        return torch.tensor(value, dtype=torch.int64)
    raise ValueError(f"{what}: expected an array or a list, got {type(value).__name__}")


def _parse_batch(raw: bytes, name: str) -> tuple[Tensor, Tensor]:
    """One pickled batch → (uint8 N×3×32×32, int64 N)."""
    try:
        batch = _Unpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:
        raise ValueError(f"{name}: not a CIFAR-10 python batch ({e})") from e
    if not isinstance(batch, dict):
        raise ValueError(f"{name}: expected a pickled dict, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{name}: missing 'data' or 'labels' (keys: {sorted(map(str, batch))})")
    try:
        data = _array_to_tensor(batch["data"], f"{name} data")
        labels = _array_to_tensor(batch["labels"], f"{name} labels").to(torch.int64)
    except (ValueError, RuntimeError, TypeError) as e:
        raise ValueError(f"{name}: {e}") from e
    if data.dtype != torch.uint8 or data.dim() != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{name}: 'data' must be uint8 N×3072, got {data.dtype} {tuple(data.shape)}"
        )
    if labels.dim() != 1 or labels.numel() != data.shape[0]:
        raise ValueError(f"{name}: {labels.numel()} labels for {data.shape[0]} images")
    if labels.numel() and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{name}: labels outside 0..{NUM_CLASSES - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def _regular_size(path: Path, label: str) -> int:
    """The size of a regular file; ValueError for a device, fifo, socket or folder.

    Why: reading /dev/zero or a fifo would never end.
    """
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{label}: not a regular file")
    return info.st_size


def _too_large(label: str) -> ValueError:
    return ValueError(f"{label}: more than {MAX_DATASET_BYTES >> 20} MiB of data")


def _read_members(path: Path, label: str) -> dict[str, bytes]:
    """The batch files of an archive or a folder, by name (only those that exist), at
    most `MAX_DATASET_BYTES` of them in all."""
    wanted = (*TRAIN_BATCHES, TEST_BATCH)
    found: dict[str, bytes] = {}
    if path.is_dir():
        files = [path / name for name in wanted if (path / name).exists()]
        if sum(_regular_size(file, f"{label}: {file.name}") for file in files) > MAX_DATASET_BYTES:
            raise _too_large(label)
        return {file.name: file.read_bytes() for file in files}
    if _regular_size(path, label) > MAX_DATASET_BYTES:
        raise _too_large(label)
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:  # sequential: one pass through the gzip stream
                if member.offset_data + member.size > MAX_DATASET_BYTES:
                    raise _too_large(label)  # before reading or skipping past its data
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted and name not in found:
                    f = archive.extractfile(member)
                    if f is not None:
                        found[name] = f.read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"{label}: not a readable CIFAR-10 .tar.gz archive ({e})") from e
    return found


def _resolve_source(path: Path, label: str | None = None) -> Path:
    """The archive or batches folder that `path` points to (directly or as its parent).

    Errors name `label` (a dataset name) instead of the path when given.
    """
    if not path.exists():
        if label is not None:
            raise FileNotFoundError(f"{label}: not found")
        raise FileNotFoundError(_missing_message(path))
    if not path.is_dir():
        return path
    if (path / TEST_BATCH).is_file() or (path / TRAIN_BATCHES[0]).is_file():
        return path
    if (path / BATCHES_DIR).is_dir():
        return path / BATCHES_DIR
    for name in ARCHIVE_NAMES:
        if (path / name).is_file():
            return path / name
    if label is not None:
        raise FileNotFoundError(f"{label}: a folder without CIFAR-10 batches or archive")
    raise FileNotFoundError(_missing_message(path / ARCHIVE_NAME))


def load_cifar10(
    path: str | os.PathLike[str], label: str | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Read CIFAR-10 from a `.tar.gz` archive or a folder.

    `path` may be the archive, the `cifar-10-batches-py` folder, or a folder holding one
    of those. Returns `(train_x, train_y, test_x, test_y)`: uint8 N×3×32×32 images and
    int64 labels in 0..9, train batches concatenated in order 1..5. Raises
    FileNotFoundError (with how to get the data) when nothing is there, ValueError when
    the contents are not CIFAR-10 python batches, not regular files, or too large.
    Messages name `label` when given (a dataset name), else the path.
    """
    source = _resolve_source(Path(path).expanduser(), label)
    label = str(source) if label is None else label
    members = _read_members(source, label)
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in members]
    if missing:
        raise ValueError(
            f"{label}: not a complete CIFAR-10 python dataset; missing {', '.join(missing)}"
        )
    train = [_parse_batch(members.pop(n), n) for n in TRAIN_BATCHES]
    test_x, test_y = _parse_batch(members.pop(TEST_BATCH), TEST_BATCH)
    train_x = torch.cat([x for x, _ in train])
    train_y = torch.cat([y for _, y in train])
    return train_x, train_y, test_x, test_y


@functools.lru_cache(maxsize=1)
def _load_cached(
    source: str, mtime_ns: int, size: int, label: str | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return load_cifar10(source, label)


def _load_shared(path: Path, label: str | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`load_cifar10` memoised on (path, mtime, size) for repeated builds in one process.

    Holds one dataset (≤ 184 MB for the full CIFAR-10); callers must not modify the result.
    """
    source = _resolve_source(path.expanduser(), label).resolve()
    info = source.stat()
    return _load_cached(str(source), info.st_mtime_ns, info.st_size, label)


def select_subset(labels: Tensor, n: int, seed: int, num_classes: int = NUM_CLASSES) -> Tensor:
    """Indices of a class-balanced random subset of `n` examples, sorted ascending.

    Each class gets `n // num_classes` examples; the remainder goes one each to classes
    0, 1, … . Which examples of a class are taken is drawn from a generator seeded with
    `seed`. Raises ValueError when a class has fewer examples than its share.
    """
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    labels = labels.reshape(-1).cpu()
    generator = torch.Generator().manual_seed(seed)
    base, extra = divmod(n, num_classes)
    chosen = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        want = base + (1 if c < extra else 0)
        if want > members.numel():
            raise ValueError(
                f"cannot take {n} class-balanced examples: class {c} has {members.numel()} "
                f"examples, {want} needed"
            )
        perm = torch.randperm(members.numel(), generator=generator)
        chosen.append(members[perm[:want]])
    return torch.sort(torch.cat(chosen)).values


def split_validation(
    labels: Tensor, train_size: int, validation_size: int
) -> tuple[Tensor, Tensor]:
    """Indices (into `labels`) of the images trained on and of the validation images.

    Both come out of the class-balanced train subset of `train_size` (seed `SUBSET_SEED`):
    `validation_size` of it (a multiple of the class count: as many per class) drawn with
    `VALIDATION_SEED`, the rest trained on; sorted, disjoint, the same on every call.
    """
    subset = select_subset(labels, train_size, SUBSET_SEED)
    held = select_subset(labels[subset], validation_size, VALIDATION_SEED)
    kept = torch.ones(subset.numel(), dtype=torch.bool)
    kept[held] = False
    return subset[kept], subset[held]


# ---------------------------------------------------------------------------------------
# Models


class SmallCNN(nn.Sequential):
    """Three conv-BN-ReLU-maxpool stages (32, 64, 128 channels) and a linear layer.

    ~114k parameters and ~10M multiply-adds per image: an epoch of 10,000 images took
    7-8 s on two idle CPU cores and 20-60 s on a busy shared machine. In 5 epochs on the
    10k/2k subset SGD, AdamW and PSGD-Kron reach about 59, 62 and 65 % test accuracy
    (`benchmarks/cifar_small.py`).
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        layers: list[nn.Module] = []
        channels = (3, 32, 64, 128)
        for c_in, c_out in itertools.pairwise(channels):
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
        layers += [nn.Flatten(), nn.Linear(channels[-1] * 4 * 4, num_classes)]
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 conv-BN) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32×32 inputs: 3×3 stem, no max-pool, 64/128/256/512 channels (11.2M)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


MODELS: dict[str, Callable[[], nn.Module]] = {"small_cnn": SmallCNN, "resnet18": ResNet18}


# ---------------------------------------------------------------------------------------
# Augmentation


def augment_batch(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random crop (zero padding of `padding` pixels) and random horizontal flip.

    `x` is B×C×H×W on any device; the draws come from `generator` (a CPU generator, so
    the result for a seed does not depend on the device).
    """
    b, _, h, w = x.shape
    shifts = torch.randint(0, 2 * padding + 1, (2, b), generator=generator).to(x.device)
    flips = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = shifts[0, :, None] + torch.arange(h, device=x.device)  # B×H
    cols = shifts[1, :, None] + torch.arange(w, device=x.device)  # B×W
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices separated by a slice put the indexed dims first: B×H×W×C.
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------
# Config and task


class CifarConfig(TaskConfig):
    """CIFAR-10 classification on a class-balanced subset (budget in epochs). Its optimizer
    presets were chosen on a validation split by `psgd-playground sweep --spec
    benchmarks/cifar_presets_sweep.json` (README, Tasks)."""

    budget_unit: ClassVar[str] = "epochs"

    name: Literal["cifar10"] = Field("cifar10", description="task name")
    dataset: str | None = Field(
        None,
        pattern=DATASET_PATTERN,
        max_length=DATASET_MAX_LENGTH,
        description=(
            "name of an archive or folder in the server's data folders (not a path), e.g. "
            "cifar-10-subset-python.tar.gz; empty = cifar-10-python.tar.gz or "
            "cifar-10-batches-py there"
        ),
    )
    train_size: int = Field(
        10000, ge=100, le=50000, description="training images (class-balanced subset)"
    )
    test_size: int = Field(
        2000, ge=100, le=10000, description="test images (class-balanced subset)"
    )
    validation_size: int = Field(
        0,
        ge=0,
        le=10000,
        multiple_of=NUM_CLASSES,
        description="images of the train subset held out for val_loss/val_accuracy (as "
        "many per class, fixed; the model trains on the others); 0 = none. Sweeps select on "
        "it: 10 % of train_size there when not given",
    )
    evaluate_test: bool = Field(
        True,
        description="score the test subset at each evaluation; false needs a validation "
        "split (a sweep's trials run so: only its re-runs see the test subset)",
    )
    train_eval_size: int = Field(
        1000,
        ge=100,
        le=10000,
        description="training images scored for train loss/accuracy at each evaluation "
        "(a fixed class-balanced sample of those trained on, no augmentation)",
    )
    model: Literal["small_cnn", "resnet18"] = Field(
        "small_cnn",
        description="small_cnn (~0.1M params, fast on CPU) or resnet18 (11.2M, for GPUs)",
    )
    batch_size: int = Field(128, ge=2, le=4096, description="mini-batch size")
    augment: bool = Field(
        True, description="random crop (4-pixel padding) and horizontal flip of train batches"
    )
    flatness_probes: int = Field(
        0,
        ge=0,
        le=100,
        description="k > 0: every evaluation also reports the training loss's Hessian top "
        f"eigenvalue (k power iterations) and trace (Hutchinson, k probes) on "
        f"{FLATNESS_IMAGES} fixed training images, at 2k Hessian-vector products; 0 = off",
    )

    @field_validator("dataset")
    @classmethod
    def _a_name_not_a_path(cls, name: str | None) -> str | None:
        if name is not None and ".." in name:
            raise ValueError("a dataset name must not contain '..'")
        return name

    @field_validator("validation_size")
    @classmethod
    def _leaves_images_to_train_on(cls, size: int, info: ValidationInfo) -> int:
        train_size = info.data.get("train_size")
        if train_size is not None and train_size - size < MIN_TRAINING_IMAGES:
            raise ValueError(
                f"carving {size} of train_size {train_size} leaves fewer than "
                f"{MIN_TRAINING_IMAGES} images to train on"
            )
        return size

    @field_validator("evaluate_test")
    @classmethod
    def _something_held_out(cls, test: bool, info: ValidationInfo) -> bool:
        if not test and info.data.get("validation_size") == 0:
            raise ValueError("false needs a validation split to evaluate on (validation_size)")
        return test

    @property
    def training_images(self) -> int:
        return self.train_size - self.validation_size

    selection_metric: ClassVar[str | None] = "val_accuracy"

    def with_validation_split(self) -> CifarConfig:
        if "validation_size" not in self.model_fields_set:
            share = round(self.train_size * SWEEP_VALIDATION_SHARE / NUM_CLASSES) * NUM_CLASSES
            return self.model_copy(update={"validation_size": share})
        if self.validation_size == 0:
            raise ValueError(
                "validation_size: a sweep selects on a validation split carved from the "
                "training images; give one (a multiple of 10) or leave it unset for 10 % of "
                "train_size"
            )
        return self

    def scoring_test(self, test: bool) -> CifarConfig:
        return self.model_copy(update={"evaluate_test": test})

    def split_note(self) -> str:
        return (
            f"selected on validation ({self.validation_size} images carved from train; "
            f"{self.training_images} trained on); test ({self.test_size} images) reported "
            f"for the re-runs only"
        )

    def build(self, device: torch.device, seed: int) -> CifarTask:
        return CifarTask(self, torch.device(device), seed)

    def memory_estimate(self) -> TaskMemory:
        shapes, per_image, widest = _model_sizes(self.model)
        eb = self.element_bytes
        scored = min(self.train_eval_size, self.training_images)
        tested = self.test_size if self.evaluate_test else 0
        # the validation images are a part of train_size: copied once, as the others
        images = (self.train_size + tested + scored) * (3 * 32 * 32 + 8)
        # an evaluation chunk's forward pass without gradients: about two layers alive (a
        # batch-16 job, 10k/2k images, peaked 105 MiB above a trivial job, loading included)
        evaluation = 2 * CifarTask.eval_chunk * widest * eb
        batch = self.batch_size * 3 * 32 * 32 * (4 * eb + 8)  # normalised, padded, cropped
        training = int(_ACTIVATION_FACTOR * self.batch_size * per_image * eb) + batch
        # a flatness measurement keeps its images' graph and its gradient's (double backward)
        flatness = 3 * _ACTIVATION_FACTOR * FLATNESS_IMAGES * per_image * eb
        return TaskMemory(
            param_shapes=shapes,
            element_bytes=eb,
            data=MemoryPart(
                _LOAD_FACTOR * _dataset_bytes(self.dataset) + images + evaluation,
                ("train_size", "test_size", "train_eval_size"),
                ("dataset",),
            ),
            activations=MemoryPart(
                max(training, int(flatness) if self.flatness_probes else 0),
                ("batch_size", "flatness_probes"),
                ("model",),
            ),
            size=MemoryPart(0, (), ("model",)),
        )


@functools.cache
def _model_sizes(model: str) -> tuple[tuple[tuple[int, ...], ...], int, int]:
    """A model's parameter shapes, the values its layers output per image and the most
    one layer outputs, counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        network = MODELS[model]()
        outputs: list[int] = []
        leaves = [m for m in network.modules() if not list(m.children())]
        hooks = [
            m.register_forward_hook(lambda _m, _i, out: outputs.append(out.numel())) for m in leaves
        ]
        network(torch.empty(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    return tuple(tuple(p.shape) for p in network.parameters()), sum(outputs), max(outputs)


def _dataset_bytes(name: str | None) -> int:
    """The size of the dataset's file(s) when it is found, else the full CIFAR-10's."""
    try:
        source = _resolve_source(*locate_dataset(name))
        files = [source / n for n in (*TRAIN_BATCHES, TEST_BATCH)] if source.is_dir() else [source]
        found = sum(f.stat().st_size for f in files if f.is_file())
    except (OSError, ValueError):
        return FULL_DATASET_BYTES
    return min(found, MAX_DATASET_BYTES) or FULL_DATASET_BYTES


class CifarTask(Task):
    """A built CIFAR-10 task; see the module docstring."""

    budget_unit: ClassVar[str] = CifarConfig.budget_unit
    eval_chunk: ClassVar[int] = 500

    def __init__(self, config: CifarConfig, device: torch.device, seed: int) -> None:
        self.config = config
        self.device = device
        self.dtype = DTYPES[config.dtype]
        path, self.dataset = locate_dataset(config.dataset)
        train_x, train_y, test_x, test_y = _load_shared(path, self.dataset)
        train_idx, val_idx = split_validation(train_y, config.train_size, config.validation_size)
        self.train_x = train_x[train_idx].to(device)
        self.train_y = train_y[train_idx].to(device)
        self.val_x = train_x[val_idx].to(device)
        self.val_y = train_y[val_idx].to(device)
        self.test_x: Tensor | None = None
        self.test_y: Tensor | None = None
        if config.evaluate_test:
            test_idx = select_subset(test_y, config.test_size, SUBSET_SEED)
            self.test_x = test_x[test_idx].to(device)
            self.test_y = test_y[test_idx].to(device)
        self.target_metric = ("test_accuracy" if config.evaluate_test else "val_accuracy", False)
        # Train metrics in evaluate(): a fixed class-balanced sample of the images trained
        # on (no augmentation, eval mode).
        n_eval = min(config.training_images, config.train_eval_size)
        eval_idx = select_subset(self.train_y, n_eval, SUBSET_SEED).to(device)
        self._train_eval_x, self._train_eval_y = self.train_x[eval_idx], self.train_y[eval_idx]
        n_flat = min(config.training_images, FLATNESS_IMAGES) if config.flatness_probes else 0
        flat_idx = select_subset(self.train_y, n_flat, FLATNESS_SEED).to(device)
        self._flat_x, self._flat_y = self.train_x[flat_idx], self.train_y[flat_idx]
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(MEAN, dtype=self.dtype, device=device).reshape(shape)
        self._std = torch.tensor(STD, dtype=self.dtype, device=device).reshape(shape)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MODELS[config.model]()
        self.model = model.to(device=device, dtype=self.dtype).train()
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self._generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.int64)
        self._cursor = 0
        self.epoch = 0  # epochs started so far
        self._x: Tensor | None = None
        self._y: Tensor | None = None

    # -- Task interface ------------------------------------------------------------------

    @property
    def params(self) -> list[Tensor]:
        return self._params

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.config.training_images / self.config.batch_size)

    def next_batch(self) -> None:
        n = self.train_x.shape[0]
        if self._cursor >= self._order.numel():
            self._order = torch.randperm(n, generator=self._generator)
            self._cursor = 0
            self.epoch += 1
        size = min(self.config.batch_size, n)
        idx = self._order[self._cursor : self._cursor + size]
        self._cursor += idx.numel()
        if idx.numel() < size:
            # Top the epoch's last batch up with its first images: a tiny last batch (16
            # of 10,000 at batch 128) gives a noisy, full-size SGD step and poor BatchNorm
            # statistics right before the end-of-epoch evaluation.
            idx = torch.cat([idx, self._order[: size - idx.numel()]])
        idx = idx.to(self.device)
        x = self._normalize(self.train_x[idx])
        if self.config.augment:
            x = augment_batch(x, self._generator)
        self._x, self._y = x, self.train_y[idx]

    def loss(self) -> Tensor:
        if self._x is None:
            self.next_batch()
        assert self._x is not None and self._y is not None
        self.model.train()
        return F.cross_entropy(self.model(self._x), self._y)

    def evaluate(self) -> dict[str, float]:
        metrics = self._scored("train", self._train_eval_x, self._train_eval_y)
        if self.val_y.numel():
            metrics |= self._scored("val", self.val_x, self.val_y)
        if self.test_x is not None and self.test_y is not None:
            metrics |= self.score_test(self.test_x, self.test_y)
        if self.config.flatness_probes:
            metrics |= self._flatness()
        return metrics

    def score_test(self, images: Tensor, labels: Tensor) -> dict[str, float]:
        """test_loss / test_accuracy: the only place the test subset is scored."""
        return self._scored("test", images, labels)

    def _scored(self, split: str, images: Tensor, labels: Tensor) -> dict[str, float]:
        loss, accuracy = self._metrics(images, labels)
        return {f"{split}_loss": loss, f"{split}_accuracy": accuracy}

    def describe(self) -> dict[str, Any]:
        return {
            "num_params": sum(p.numel() for p in self._params),
            "dataset": self.dataset,
            "model": self.config.model,
            "train_size": self.config.train_size,
            "validation_size": int(self.val_y.numel()),
            "training_images": int(self.train_y.numel()),
            "test_size": self.config.test_size,
            "evaluate_test": self.config.evaluate_test,
            "train_eval_size": int(self._train_eval_y.numel()),
            "batch_size": self.config.batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "augment": self.config.augment,
            "classes": list(CLASSES),
        }

    def _flatness(self) -> dict[str, float]:
        """The Hessian of the training loss on the fixed flatness images, in eval mode (the
        model as it is scored: BatchNorm's running statistics, no augmentation), so the
        measurement has no side effect on the run."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                logits = self.model(self._normalize(self._flat_x))
                loss = F.cross_entropy(logits, self._flat_y)
                found = sharpness(loss, self._params, self.config.flatness_probes, FLATNESS_SEED)
        finally:
            self.model.train(was_training)
        return {
            "hessian_top_eigenvalue": found.top_eigenvalue,
            "hessian_trace": found.trace,
            "hessian_trace_stderr": found.trace_stderr,
        }

    # -- helpers -------------------------------------------------------------------------

    def _normalize(self, x: Tensor) -> Tensor:
        return (x.to(self.dtype) / 255.0 - self._mean) / self._std

    @torch.no_grad()
    def _metrics(self, images: Tensor, labels: Tensor) -> tuple[float, float]:
        was_training = self.model.training
        self.model.eval()
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        try:
            for start in range(0, images.shape[0], self.eval_chunk):
                x = self._normalize(images[start : start + self.eval_chunk])
                y = labels[start : start + self.eval_chunk]
                logits = self.model(x)
                total_loss += F.cross_entropy(logits, y, reduction="sum").double()
                correct += (logits.argmax(1) == y).sum()
        finally:
            self.model.train(was_training)
        n = max(images.shape[0], 1)
        return float(total_loss) / n, int(correct) / n


CIFAR_CONFIGS = (CifarConfig,)
