"""CIFAR-10 task: loader, download, subset selection, augmentation, models, the built task.

The real-data tests read the 10,000/2,000-image subset in the official python format from
`../shared/data/cifar-10-subset-python.tar.gz` (beside the repository; override with
$PSGD_PLAYGROUND_CIFAR). Without it they are skipped, except under CI (CI set), where a
missing archive is a failure.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import tarfile
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from server.tasks import cifar
from server.tasks.cifar import (
    CifarConfig,
    augment_batch,
    download,
    load_cifar10,
    select_subset,
    verify_md5,
)

SHARED_ARCHIVE = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar-10-subset-python.tar.gz"
)
ARCHIVE = Path(os.environ.get("PSGD_PLAYGROUND_CIFAR") or SHARED_ARCHIVE)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, ...]:
    """The shared subset, read once (through the task's cache, which builds reuse)."""
    if not ARCHIVE.exists():
        reason = f"CIFAR-10 subset not found at {ARCHIVE} (set PSGD_PLAYGROUND_CIFAR)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return cifar._load_shared(ARCHIVE)


def _build(seed: int = 0, **overrides: object) -> cifar.CifarTask:
    """A small task on the shared subset, read from its local path."""
    fields = {"train_size": 200, "test_size": 100, "batch_size": 64}
    with cifar.local_data(ARCHIVE):
        return CifarConfig(**{**fields, **overrides}).build(CPU, seed)


def _fake_archive(data: tuple[torch.Tensor, ...], per_batch: int = 20, protocol: int = 2) -> bytes:
    """A small .tar.gz in the official layout, pickled with numpy like the real one."""
    np = pytest.importorskip("numpy")
    train_x, train_y, test_x, test_y = data
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for i, name in enumerate(names):
            xs, ys = (test_x, test_y) if name == "test_batch" else (train_x, train_y)
            part = slice(i * per_batch, (i + 1) * per_batch)
            # labels as an int64 array, a list of ints, a list of numpy scalars
            labels = [ys[part].numpy(), ys[part].tolist(), list(ys[part].numpy())][i % 3]
            batch = {b"data": np.ascontiguousarray(xs[part].reshape(per_batch, -1).numpy())}
            batch[b"labels"] = labels
            raw = pickle.dumps(batch, protocol=protocol)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


# -------------------------------------------------------------------------------- loading
def test_loaded_subset_shapes_dtypes_and_balance(data: tuple[torch.Tensor, ...]) -> None:
    train_x, train_y, test_x, test_y = data
    assert train_x.shape == (10000, 3, 32, 32) and train_x.dtype == torch.uint8
    assert test_x.shape == (2000, 3, 32, 32) and test_x.dtype == torch.uint8
    assert train_y.shape == (10000,) and train_y.dtype == torch.int64
    assert test_y.shape == (2000,) and test_y.dtype == torch.int64
    assert int(train_y.min()) == 0 and int(train_y.max()) == 9
    assert torch.bincount(train_y).tolist() == [1000] * 10
    assert torch.bincount(test_y).tolist() == [200] * 10
    assert 60 < float(train_x.float().mean()) < 200  # real images, not zeros


def test_folder_and_archive_give_identical_tensors(
    data: tuple[torch.Tensor, ...], tmp_path: Path
) -> None:
    with tarfile.open(ARCHIVE) as archive:
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(tmp_path, **kwargs)
    folder = tmp_path / "cifar-10-batches-py"
    assert cifar._resolve_source(tmp_path) == folder  # the parent is accepted too
    for a, b in zip(data, load_cifar10(folder)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("protocol", [2, 5])
def test_numpy_pickles_of_any_protocol_load(
    data: tuple[torch.Tensor, ...], tmp_path: Path, protocol: int
) -> None:
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(_fake_archive(data, protocol=protocol))
    train_x, train_y, test_x, test_y = load_cifar10(tmp_path)  # a folder holding the archive
    assert torch.equal(train_x, data[0][:100]) and torch.equal(train_y, data[1][:100])
    assert torch.equal(test_x, data[2][100:120]) and torch.equal(test_y, data[3][100:120])


def test_missing_data_says_how_to_get_it(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.tar.gz", tmp_path):
        with pytest.raises(FileNotFoundError, match="psgd-playground data download") as info:
            load_cifar10(path)
        assert "--data-dir" in str(info.value)


def test_malformed_contents_raise_value_error(tmp_path: Path) -> None:
    not_tar = tmp_path / "junk.tar.gz"
    not_tar.write_bytes(b"definitely not gzip")
    with pytest.raises(ValueError, match="not a readable CIFAR-10"):
        load_cifar10(not_tar)

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": [], b"labels": []}))
    with pytest.raises(ValueError, match="missing data_batch_1"):
        load_cifar10(folder)

    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({b"labels": [0]}))
    with pytest.raises(ValueError, match="missing 'data' or 'labels'"):
        load_cifar10(folder)

    # Pickles may only rebuild arrays: anything else is refused, never called.
    evil = pickle.dumps({b"data": os.getcwd, b"labels": []})
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(evil)
    with pytest.raises(ValueError, match="refusing to load"):
        load_cifar10(folder)


# ---------------------------------------------------------------------------- download
def test_verify_md5(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"hello")
    verify_md5(path, hashlib.md5(b"hello").hexdigest())
    with pytest.raises(ValueError, match="md5 mismatch"):
        verify_md5(path, "0" * 32)


class _FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def test_download_with_fake_server(
    data: tuple[torch.Tensor, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = _fake_archive(data, per_batch=4)
    calls: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> _FakeResponse:
        calls.append(url)
        return _FakeResponse(payload)

    monkeypatch.setattr(cifar, "urlopen", fake_urlopen)
    monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(payload).hexdigest())
    progress: list[tuple[int, int | None]] = []
    target = tmp_path / "data"
    path = download(target, progress=lambda done, total: progress.append((done, total)))
    assert path == target / "cifar-10-python.tar.gz" and path.read_bytes() == payload
    assert calls == [cifar.CIFAR10_URL] and progress[-1] == (len(payload), len(payload))
    assert load_cifar10(target)[0].shape == (20, 3, 32, 32)
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-python.tar.gz"]

    assert download(target) == path and len(calls) == 1  # verified file: no new download

    monkeypatch.setattr(cifar, "CIFAR10_MD5", "0" * 32)  # now the server sends a bad file
    with pytest.raises(ValueError, match="md5 mismatch"):
        download(tmp_path / "bad")
    assert list((tmp_path / "bad").iterdir()) == []  # the bad download was deleted


def test_download_network_error_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.error import URLError

    def offline(url: str, timeout: float) -> None:
        raise URLError("no route to host")

    monkeypatch.setattr(cifar, "urlopen", offline)
    with pytest.raises(OSError, match="could not download CIFAR-10"):
        download(tmp_path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ subsets
def test_select_subset_is_balanced_and_seeded() -> None:
    labels = torch.arange(10).repeat(50)[
        torch.randperm(500, generator=torch.Generator().manual_seed(1))
    ]
    idx = select_subset(labels, 203, seed=0)
    assert idx.numel() == 203 and idx.unique().numel() == 203 and torch.equal(idx, idx.sort()[0])
    assert torch.bincount(labels[idx], minlength=10).tolist() == [21, 21, 21] + [20] * 7
    assert torch.equal(idx, select_subset(labels, 203, seed=0))
    assert not torch.equal(idx, select_subset(labels, 203, seed=1))
    assert select_subset(labels, 500, seed=3).tolist() == list(range(500))
    with pytest.raises(ValueError, match="class 0 has 50"):
        select_subset(labels, 501, seed=0)


# ------------------------------------------------------------------------- augmentation
def test_augment_is_a_seeded_crop_and_flip() -> None:
    x = torch.randn(16, 3, 32, 32)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, augment_batch(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, augment_batch(x, torch.Generator().manual_seed(1)))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(4):  # each output is some 32×32 window of the padded image, maybe flipped
        windows = [
            w
            for dy in range(9)
            for dx in range(9)
            for w in (padded[i, :, dy : dy + 32, dx : dx + 32],)
            for w in (w, w.flip(-1))
        ]
        assert any(torch.equal(out[i], w) for w in windows)


# ---------------------------------------------------------------------------------- task
def test_config_fields_and_validation() -> None:
    config = CifarConfig()
    assert (config.name, config.train_size, config.test_size) == ("cifar10", 10000, 2000)
    assert (config.model, config.batch_size, config.augment) == ("small_cnn", 128, True)
    assert all(f.description for f in CifarConfig.model_fields.values())
    assert (CifarConfig,) == cifar.CIFAR_CONFIGS
    assert config.train_eval_size == 1000
    bad_values = ({"train_size": 50}, {"train_size": 50001}, {"model": "vgg"}, {"size": 1})
    bad_values += ({"train_eval_size": 99}, {"train_eval_size": 10001})
    for bad in bad_values:
        with pytest.raises(ValidationError):
            CifarConfig(**bad)


def test_default_data_path_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSGD_PLAYGROUND_DATA_DIR", str(tmp_path))
    assert cifar.default_data_path() == tmp_path / "cifar-10-python.tar.gz"
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert cifar.default_data_path() == tmp_path / "cifar-10-batches-py"


def test_default_data_path_falls_back_to_extra_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the Docker image's layout: an empty data volume, CIFAR-10 bundled in a read-only folder
    volume, bundled = tmp_path / "data", tmp_path / "bundled"
    volume.mkdir()
    bundled.mkdir()
    monkeypatch.setenv("PSGD_PLAYGROUND_DATA_DIR", str(volume))
    monkeypatch.setenv("PSGD_PLAYGROUND_EXTRA_DATA_DIR", str(bundled))
    assert cifar.default_data_path() == volume / "cifar-10-python.tar.gz"  # neither has it
    (bundled / "cifar-10-python.tar.gz").touch()
    assert cifar.default_data_path() == bundled / "cifar-10-python.tar.gz"
    (volume / "cifar-10-batches-py").mkdir()  # the data folder wins when it has a copy
    assert cifar.default_data_path() == volume / "cifar-10-batches-py"


def test_task_step_loss_and_purity(data: tuple[torch.Tensor, ...]) -> None:
    task = _build()
    assert task.budget_unit == "epochs" and task.target_metric == ("test_accuracy", False)
    assert task.steps_per_epoch == math.ceil(200 / 64)
    info = task.describe()
    assert info["model"] == "small_cnn" and 50_000 < info["num_params"] <= 300_000
    task.next_batch()
    first = task.loss()
    assert abs(float(first.detach()) - math.log(10)) < 0.7
    assert torch.equal(first, task.loss())  # a pure function of batch and parameters
    opt = torch.optim.SGD(task.params, lr=0.01, momentum=0.9)
    first.backward()
    opt.step()
    assert math.isfinite(float(task.loss().detach()))


def test_batches_are_seeded_and_cover_each_epoch(data: tuple[torch.Tensor, ...]) -> None:
    a, b, c = (_build(s, batch_size=48) for s in (0, 0, 1))
    for task in (a, b, c):
        task.next_batch()
    assert a._x is not None and a._x.shape == (48, 3, 32, 32) and a._x.dtype == torch.float32
    assert torch.equal(a._x, b._x) and not torch.equal(a._x, c._x)
    assert all(torch.equal(p, q) for p, q in zip(a.params, b.params))
    sizes = [48]
    for _ in range(a.steps_per_epoch - 1):
        a.next_batch()
        sizes.append(int(a._y.numel()))
    assert sizes == [48] * 5 and a.epoch == 1  # the last batch is topped up, not partial
    assert a._cursor == 200 and a._order.unique().numel() == 200
    a.next_batch()
    assert a.epoch == 2 and a._cursor == 48


def test_newton_fitting_runs_through_batchnorm(data: tuple[torch.Tensor, ...]) -> None:
    psgd = pytest.importorskip("psgd")
    task = _build(augment=False)
    opt = psgd.Kron(task.params, lr=0.01, fitting="newton", preconditioner_update_probability=1.0)
    task.next_batch()
    before = [p.detach().clone() for p in task.params]
    loss = opt.step(task.loss)  # double backward through conv, BatchNorm, max-pool
    assert math.isfinite(float(loss.detach()))
    assert any(not torch.equal(p, q) for p, q in zip(before, task.params))


def test_evaluate_keys_ranges_and_modes(data: tuple[torch.Tensor, ...]) -> None:
    task = _build(dtype="float64", train_size=100)
    metrics = task.evaluate()
    assert set(metrics) == {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert 0 <= metrics["train_accuracy"] <= 1 and 0 <= metrics["test_accuracy"] <= 1
    assert 1.0 < metrics["test_loss"] < 5.0 and metrics["train_loss"] > 0
    assert task.model.training  # evaluation leaves training mode on
    assert metrics == task.evaluate()  # eval mode: deterministic, no running-stat updates
    assert task.loss().dtype == torch.float64


def test_train_accuracy_scores_its_own_bounded_sample(data: tuple[torch.Tensor, ...]) -> None:
    """The train sample is `train_eval_size` images, not as many as the test subset."""
    task = _build(train_size=1000, test_size=100, train_eval_size=300)
    scored: list[int] = []
    metrics = task._metrics
    task._metrics = lambda images, labels: (scored.append(len(labels)), metrics(images, labels))[1]
    task.evaluate()
    assert scored == [300, 100]  # train sample, then the test subset
    assert torch.bincount(task._train_eval_y, minlength=10).tolist() == [30] * 10
    assert task.describe()["train_eval_size"] == 300
    # capped at the train subset; the default is 1,000
    assert _build(train_size=200, train_eval_size=500).describe()["train_eval_size"] == 200
    assert _build(train_size=2000, test_size=500).describe()["train_eval_size"] == 1000


def test_resnet18_shape_and_size() -> None:
    model = cifar.ResNet18()
    assert 11_000_000 < sum(p.numel() for p in model.parameters()) < 11_300_000
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# ---------------------------------------------------------------------- dataset names
def _data_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    volume, bundled = tmp_path / "data", tmp_path / "bundled"
    volume.mkdir()
    bundled.mkdir()
    monkeypatch.setenv("PSGD_PLAYGROUND_DATA_DIR", str(volume))
    monkeypatch.setenv("PSGD_PLAYGROUND_EXTRA_DATA_DIR", str(bundled))
    return volume, bundled


def test_a_named_dataset_is_found_in_the_data_folders_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume, bundled = _data_dirs(tmp_path, monkeypatch)
    (bundled / "mine.tar.gz").touch()
    assert cifar.locate_dataset("mine.tar.gz") == (bundled / "mine.tar.gz", "dataset 'mine.tar.gz'")
    (volume / "mine.tar.gz").touch()  # the data folder first
    assert cifar.locate_dataset("mine.tar.gz")[0] == volume / "mine.tar.gz"
    with pytest.raises(FileNotFoundError) as info:
        cifar.locate_dataset("other.tar.gz")
    assert "'other.tar.gz'" in str(info.value) and str(tmp_path) not in str(info.value)
    with cifar.local_data(tmp_path / "anywhere"):  # local callers read any path
        assert cifar.locate_dataset("mine.tar.gz")[0] == tmp_path / "anywhere"


def test_a_job_error_names_the_dataset_not_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume, _ = _data_dirs(tmp_path, monkeypatch)
    (volume / "junk.tar.gz").write_bytes(b"not an archive")
    for name, error in (("junk.tar.gz", ValueError), ("missing.tar.gz", FileNotFoundError)):
        with pytest.raises(error) as info:
            CifarConfig(dataset=name).build(CPU, seed=0)
        assert f"dataset {name!r}" in str(info.value) and str(tmp_path) not in str(info.value)
    with pytest.raises(FileNotFoundError) as info:  # no default dataset either
        CifarConfig().build(CPU, seed=0)
    assert "psgd-playground data download" in str(info.value)
    assert str(tmp_path) not in str(info.value)


@pytest.mark.parametrize("name", ["/dev/zero", "../x", "a/b", ".x", "a..b", "x" * 101])
def test_a_dataset_name_is_not_a_path(name: str) -> None:
    with pytest.raises(ValidationError, match="dataset"):
        CifarConfig(dataset=name)


def _loads_within(seconds: float, path: Path) -> BaseException | None:
    """load_cifar10 in a thread; the error it raised, or a failure if it did not return."""
    import threading

    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_cifar10(path, "dataset 'x'")
            outcome.append(None)
        except BaseException as e:  # handed to the test
            outcome.append(e)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"loading {path} did not return within {seconds} s"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs fifos")
def test_devices_and_fifos_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.tar.gz"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        error = _loads_within(10, path)
        assert isinstance(error, ValueError) and "not a regular file" in str(error)


def test_reading_is_capped(
    data: tuple[torch.Tensor, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "small.tar.gz"
    archive.write_bytes(_fake_archive(data, per_batch=4))
    assert load_cifar10(archive)[0].shape == (20, 3, 32, 32)
    monkeypatch.setattr(cifar, "MAX_DATASET_BYTES", archive.stat().st_size - 1)
    with pytest.raises(ValueError, match="MiB of data"):
        load_cifar10(archive)  # the file itself
    monkeypatch.setattr(cifar, "MAX_DATASET_BYTES", archive.stat().st_size + 1)
    with pytest.raises(ValueError, match="MiB of data"):
        load_cifar10(archive)  # what it unpacks to (≈ 12 KiB per batch)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH):
        (folder / name).write_bytes(b"x" * 1000)
    monkeypatch.setattr(cifar, "MAX_DATASET_BYTES", 5000)
    with pytest.raises(ValueError, match="MiB of data"):
        load_cifar10(folder)


# -------------------------------------------------------------------- validation split
def test_the_validation_split_is_disjoint_class_balanced_and_fixed(
    data: tuple[torch.Tensor, ...],
) -> None:
    labels = data[1]
    trained, held = cifar.split_validation(labels, 500, 100)
    assert set(trained.tolist()).isdisjoint(held.tolist())
    # carved out of the train subset: together they are exactly that subset
    assert torch.equal(torch.sort(torch.cat([trained, held])).values, select_subset(labels, 500, 0))
    assert torch.bincount(labels[held], minlength=10).tolist() == [10] * 10
    assert torch.bincount(labels[trained], minlength=10).tolist() == [40] * 10
    again = cifar.split_validation(labels, 500, 100)
    assert torch.equal(again[0], trained) and torch.equal(again[1], held)
    assert cifar.split_validation(labels, 500, 0)[1].numel() == 0


def test_a_task_trains_on_the_images_left_and_scores_validation(
    data: tuple[torch.Tensor, ...],
) -> None:
    task = _build(train_size=300, validation_size=100, train_eval_size=100)
    assert task.train_y.numel() == 200 and task.val_y.numel() == 100
    assert task.steps_per_epoch == math.ceil(200 / 64)
    # the train-metrics sample comes from the images trained on, never the validation ones
    trained = {bytes(x.flatten().tolist()) for x in task.train_x}
    held = {bytes(x.flatten().tolist()) for x in task.val_x}
    assert trained.isdisjoint(held)
    assert {bytes(x.flatten().tolist()) for x in task._train_eval_x} <= trained
    metrics = task.evaluate()
    assert list(metrics) == [
        *("train_loss", "train_accuracy", "val_loss", "val_accuracy"),
        *("test_loss", "test_accuracy"),
    ]
    assert task.target_metric == ("test_accuracy", False)
    # the images trained on depend neither on the run seed nor on scoring the test split
    other = _build(seed=3, train_size=300, validation_size=100, evaluate_test=False)
    assert torch.equal(other.train_x, task.train_x) and torch.equal(other.val_x, task.val_x)
    assert "val_loss" not in _build(train_size=300).evaluate()  # no split: as before


def test_without_the_test_split_nothing_scores_it(
    data: tuple[torch.Tensor, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[int] = []
    real = cifar.CifarTask.score_test
    monkeypatch.setattr(
        cifar.CifarTask,
        "score_test",
        lambda self, x, y: (scored.append(len(y)), real(self, x, y))[1],
    )
    task = _build(train_size=300, validation_size=100, evaluate_test=False)
    assert task.test_x is None  # not even copied
    assert set(task.evaluate()) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert task.target_metric == ("val_accuracy", False)
    assert scored == []
    _build(train_size=300, validation_size=100).evaluate()
    assert scored == [100]  # the spy does see a task that scores it


@pytest.mark.parametrize(
    ("fields", "field", "why"),
    [
        ({"validation_size": 105}, "validation_size", "multiple_of"),  # as many per class
        ({"train_size": 300, "validation_size": 210}, "validation_size", "leaves fewer"),
        ({"evaluate_test": False}, "evaluate_test", "needs a validation split"),
    ],
)
def test_a_validation_split_that_cannot_be_is_refused(fields: dict, field: str, why: str) -> None:
    assert CifarConfig(validation_size=100, evaluate_test=False).validation_size == 100
    with pytest.raises(ValidationError) as error:
        CifarConfig(**fields)
    [found] = error.value.errors()
    assert found["loc"] == (field,) and why in f"{found['type']} {found['msg']}"


def test_the_memory_estimate_follows_the_split() -> None:
    def data_bytes(**fields: object) -> int:
        return CifarConfig(dataset="absent", **fields).memory_estimate().data.bytes

    image = 3 * 32 * 32 + 8
    base = data_bytes(train_size=3000, test_size=1000)
    # validation images are part of train_size: nothing more to hold
    assert data_bytes(train_size=3000, test_size=1000, validation_size=500) == base
    no_test = data_bytes(train_size=3000, test_size=1000, validation_size=500, evaluate_test=False)
    assert base - no_test == 1000 * image
    # the train-metrics sample is capped at the images trained on
    small = {"train_size": 600, "test_size": 100, "train_eval_size": 600}
    assert data_bytes(**small) - data_bytes(**small, validation_size=200) == 200 * image
