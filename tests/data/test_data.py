"""Datamodules read tiny files written here in each official format.

References are computed independently with NumPy from the arrays the test wrote: images
reshaped/scaled/normalised by hand, crops enumerated by hand, classes counted by hand.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from lga_lightning.data import (
    ArraysDataModule,
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    ImageNet16DataModule,
)

CIFAR10_MEAN = np.array([125.3, 123.0, 113.9]) / 255
CIFAR10_STD = np.array([63.0, 62.1, 66.7]) / 255
IMNET_MEAN = np.array([122.68, 116.66, 104.01]) / 255
IMNET_STD = np.array([63.22, 61.26, 65.09]) / 255


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)


def _batch(rng, n, side, labels, label_key="labels", bytes_keys=False) -> dict:
    data = {
        "data": rng.integers(0, 256, (n, 3 * side * side), dtype=np.uint8),
        label_key: list(labels),
        "batch_label": "test fixture",
    }
    return {k.encode(): v for k, v in data.items()} if bytes_keys else data


def write_cifar10(root: Path, per_batch: int = 10, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    train = []
    for i in range(1, 6):
        batch = _batch(
            rng, per_batch, 32, [(j + i) % 10 for j in range(per_batch)], bytes_keys=(i == 2)
        )  # one batch with bytes keys, like encoding="bytes"
        _dump(folder / f"data_batch_{i}", batch)
        train.append({k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()})
    test = _batch(rng, 12, 32, [j % 10 for j in range(12)])
    _dump(folder / "test_batch", test)
    return {
        "train_x": np.concatenate([b["data"] for b in train]),
        "train_y": np.concatenate([b["labels"] for b in train]),
        "test_x": test["data"],
        "test_y": np.array(test["labels"]),
    }


def write_imagenet16(root: Path, per_batch: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "ImageNet16"
    xs, ys = [], []
    for i in range(1, 11):
        # 1-based labels, some beyond 120 that ImageNet16-120 drops
        labels = [1 + (j * 7 + i) % 4 for j in range(per_batch - 2)] + [121, 1000]
        batch = _batch(rng, per_batch, 16, labels)
        _dump(folder / f"train_data_batch_{i}", batch)
        xs.append(batch["data"])
        ys.append(np.array(labels))
    val = _batch(rng, 6, 16, [1, 2, 3, 4, 500, 120])
    _dump(folder / "val_data", val)
    return {
        "train_x": np.concatenate(xs),
        "train_y": np.concatenate(ys),
        "test_x": val["data"],
        "test_y": np.array(val["labels"]),
    }


def reference(rows: np.ndarray, side: int, mean, std) -> np.ndarray:
    """Official row layout -> normalised NCHW, by hand."""
    x = rows.reshape(-1, 3, side, side).astype(np.float64) / 255.0
    return (x - mean[None, :, None, None]) / std[None, :, None, None]


def all_crops_and_flips(img: np.ndarray, pad: int) -> np.ndarray:
    """Every image CropFlip can produce from a CHW [0,1] image, enumerated by hand."""
    c, h, w = img.shape
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad))
    padded[:, pad : pad + h, pad : pad + w] = img
    out = []
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            crop = padded[:, top : top + h, left : left + w]
            out += [crop, crop[:, :, ::-1]]
    return np.stack(out)


def collect(loader):
    xs, ys = zip(*list(loader), strict=True)
    return torch.cat(xs), torch.cat(ys)


def collect_test(dm):
    """The test loader's images and labels put back in file order (the loader permutes them)."""
    x, y = collect(dm.test_dataloader())
    back = torch.argsort(dm.test_order)
    return x[back], y[back]


# ---------------------------------------------------------------- CIFAR
@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
    root = tmp_path_factory.mktemp("c10")
    return root, write_cifar10(root)


def test_cifar10_reads_the_official_layout(cifar10):
    root, ref = cifar10
    dm = CIFAR10DataModule(root, batch_size=7, val_size=0.2, seed=0)
    assert dm.num_classes == 10 and dm.input_shape == (3, 32, 32)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 40 and len(dm.val_set) == 10
    # test set: every file image once, in the fixed seeded order, NB201 normalisation
    x, y = collect(dm.test_dataloader())
    assert x.shape == (12, 3, 32, 32) and x.dtype == torch.float32
    order = dm.test_order.numpy()
    assert sorted(order.tolist()) == list(range(12)) and order.tolist() != list(range(12))
    np.testing.assert_allclose(
        x.numpy(), reference(ref["test_x"], 32, CIFAR10_MEAN, CIFAR10_STD)[order], atol=1e-5
    )
    assert y.tolist() == ref["test_y"][order].tolist()
    # train + val together hold exactly the file's training images with their labels
    want = reference(ref["train_x"], 32, CIFAR10_MEAN, CIFAR10_STD)
    got = torch.cat([dm.probe_set.images, dm.val_set.images]).numpy()
    got_y = torch.cat([dm.probe_set.labels, dm.val_set.labels]).numpy()
    order = {row.tobytes(): i for i, row in enumerate(ref["train_x"].reshape(-1, 3, 32, 32))}
    idx = [order[img.tobytes()] for img in got]
    assert sorted(idx) == list(range(50))
    assert got_y.tolist() == ref["train_y"][idx].tolist()
    xv, _ = dm.val_set[0]
    np.testing.assert_allclose(xv.numpy(), want[idx[40]], atol=1e-5)
    # val split is class-stratified: 10 of 50 with 5 per class -> one per class
    assert sorted(dm.val_set.labels.tolist()) == list(range(10))
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (7, 3, 32, 32) and yb.dtype == torch.int64


def test_cifar_augmentation_changes_train_not_val(cifar10):
    root, _ = cifar10
    dm = CIFAR10DataModule(root, val_size=0.2, seed=0, normalize=False)
    dm.setup()
    torch.manual_seed(0)
    plain = dm.probe_set[3][0].numpy()
    candidates = all_crops_and_flips(plain.astype(np.float64), pad=4)
    draws = [dm.train_set[3][0].numpy() for _ in range(12)]
    for d in draws:
        assert np.abs(candidates - d).reshape(len(candidates), -1).max(1).min() < 1e-6
    assert any(not np.array_equal(draws[0], d) for d in draws[1:])
    val = [dm.val_set[2][0] for _ in range(3)]
    assert all(v.equal(val[0]) for v in val)
    assert dm.val_set.transform is None and dm.probe_set.transform is None


def test_probe_batch_is_balanced_deterministic_and_from_train(cifar10):
    root, _ = cifar10
    a = CIFAR10DataModule(root, val_size=0.2, seed=0)
    b = CIFAR10DataModule(root, val_size=0.2, seed=0)
    xa, ya = a.probe_batch(20, seed=3)
    xb, yb = b.probe_batch(20, seed=3)
    assert xa.equal(xb) and ya.equal(yb)
    assert np.bincount(ya.numpy(), minlength=10).tolist() == [2] * 10
    xc, _ = a.probe_batch(20, seed=4)
    assert not xc.equal(xa)
    train = {img.numpy().tobytes() for img in a.probe_set.images}
    val = {img.numpy().tobytes() for img in a.val_set.images}
    for img in xa:  # undo the normalisation by hand, find it among the training images
        raw = img.numpy() * CIFAR10_STD[:, None, None] + CIFAR10_MEAN[:, None, None]
        key = np.rint(raw * 255).astype(np.uint8).tobytes()
        assert key in train and key not in val
    x7, y7 = a.probe_batch(7, seed=3)
    assert np.bincount(y7.numpy()).max() == 1  # 7 distinct classes


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    train = {
        "data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
        "fine_labels": [i * 5 % 100 for i in range(20)],
        "coarse_labels": [0] * 20,
    }
    test = {
        "data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
        "fine_labels": [99, 0, 42, 7],
        "coarse_labels": [1] * 4,
    }
    _dump(folder / "train", train)
    _dump(folder / "test", test)
    dm = CIFAR100DataModule(tmp_path, val_size=0, augment=False)
    assert dm.num_classes == 100
    x, y = collect_test(dm)
    assert y.tolist() == [99, 0, 42, 7]
    mean = np.array([129.3, 124.1, 112.4]) / 255
    std = np.array([68.2, 65.4, 70.4]) / 255
    np.testing.assert_allclose(x.numpy(), reference(test["data"], 32, mean, std), atol=1e-5)
    assert sorted(dm.train_set.labels.tolist()) == sorted(train["fine_labels"])
    assert dm.val_dataloader() == []
    # the folder itself may be given as root
    assert len(CIFAR100DataModule(folder, val_size=0).probe_batch(4, 0)[0]) == 4


def test_cifar_missing_and_corrupt_files(tmp_path, cifar10):
    with pytest.raises(FileNotFoundError, match="data_batch_1.*cifar-10-batches-py") as info:
        CIFAR10DataModule(tmp_path / "nowhere").setup()
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in str(info.value)
    root, _ = cifar10
    broken = tmp_path / "broken"
    (broken / "cifar-10-batches-py").mkdir(parents=True)
    for f in (root / "cifar-10-batches-py").iterdir():
        (broken / "cifar-10-batches-py" / f.name).write_bytes(f.read_bytes())
    (broken / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="missing data_batch_3 in") as info:
        CIFAR10DataModule(broken).prepare_data()
    assert "data_batch_1," not in str(info.value).split("Expected")[0]
    truncated = (root / "cifar-10-batches-py" / "data_batch_1").read_bytes()[:500]
    (broken / "cifar-10-batches-py" / "data_batch_3").write_bytes(truncated)
    with pytest.raises(ValueError, match="cannot read .*data_batch_3"):
        CIFAR10DataModule(broken).setup()
    _dump(
        broken / "cifar-10-batches-py" / "data_batch_3",
        {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]},
    )
    with pytest.raises(ValueError, match="data_batch_3 'data' is uint8 with shape \\(2, 100\\)"):
        CIFAR10DataModule(broken).setup()
    _dump(
        broken / "cifar-10-batches-py" / "data_batch_3",
        {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]},
    )
    with pytest.raises(ValueError, match="labels in \\[0, 10\\], expected 0..9"):
        CIFAR10DataModule(broken).setup()


def test_cifar_download_needs_torchvision(tmp_path):
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs torchvision.*cifar-10-batches-py"):
            CIFAR10DataModule(tmp_path, download=True).prepare_data()
    else:
        pytest.skip("torchvision is installed; the download itself needs the network")


# ---------------------------------------------------------------- ImageNet16-120
def test_imagenet16_keeps_120_classes_zero_based(tmp_path):
    ref = write_imagenet16(tmp_path)
    dm = ImageNet16DataModule(tmp_path, val_size=0, seed=0, augment=True)
    assert dm.num_classes == 120 and dm.input_shape == (3, 16, 16)
    dm.setup()
    keep = ref["train_y"] <= 120
    assert len(dm.train_set) == keep.sum() == 60
    assert sorted(dm.train_set.labels.tolist()) == sorted((ref["train_y"][keep] - 1).tolist())
    x, y = collect_test(dm)
    tkeep = ref["test_y"] <= 120
    assert y.tolist() == (ref["test_y"][tkeep] - 1).tolist() == [0, 1, 2, 3, 119]
    np.testing.assert_allclose(
        x.numpy(), reference(ref["test_x"][tkeep], 16, IMNET_MEAN, IMNET_STD), atol=1e-5
    )
    # crops use padding 2 at 16x16
    dm_raw = ImageNet16DataModule(tmp_path, val_size=0, normalize=False)
    dm_raw.setup()
    cands = all_crops_and_flips(dm_raw.probe_set[0][0].numpy().astype(np.float64), pad=2)
    torch.manual_seed(1)
    for _ in range(8):
        d = dm_raw.train_set[0][0].numpy()
        assert np.abs(cands - d).reshape(len(cands), -1).max(1).min() < 1e-6
    xp, yp = dm.probe_batch(8, seed=0)
    assert xp.shape == (8, 3, 16, 16) and np.bincount(yp.numpy()).tolist() == [2, 2, 2, 2]
    assert (
        ImageNet16DataModule(tmp_path, num_classes=1000, val_size=0).probe_batch(80, 0)[1].max()
        == 999
    )


def test_imagenet16_missing_files(tmp_path):
    write_imagenet16(tmp_path)
    (tmp_path / "ImageNet16" / "val_data").unlink()
    with pytest.raises(FileNotFoundError, match="missing val_data in .*ImageNet16") as info:
        ImageNet16DataModule(tmp_path).setup()
    assert "Downsampled ImageNet" in str(info.value)


# ---------------------------------------------------------------- digits
def test_digits_match_sklearn_and_split_disjointly():
    ref = load_digits()
    dm = DigitsDataModule(normalize=False, val_size=0.1, test_size=0.2, seed=0)
    dm.setup()
    parts = [dm.probe_set, dm.val_set, dm.test_set]
    assert [len(p) for p in parts] == [1293, 144, 360]
    images = torch.cat([p.images for p in parts]).numpy()[:, 0]
    labels = torch.cat([p.labels for p in parts]).numpy()
    key = {
        (img.tobytes(), int(lab))
        for img, lab in zip((ref.images / 16.0).astype(np.float32), ref.target, strict=True)
    }
    assert {(img.tobytes(), int(lab)) for img, lab in zip(images, labels, strict=True)} == key
    assert len({img.tobytes() for img in images}) == len({im.tobytes() for im in ref.images})
    again = DigitsDataModule(normalize=False, seed=0)
    again.setup()
    other = DigitsDataModule(normalize=False, seed=1)
    other.setup()
    assert again.val_set.images.equal(dm.val_set.images)
    assert not other.val_set.images.equal(dm.val_set.images)


def test_digits_resize_channels_normalisation():
    dm = DigitsDataModule(resize=32, channels=3, batch_size=64)
    assert dm.input_shape == (3, 32, 32) and dm.num_classes == 10
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 3, 32, 32) and y.shape == (64,)
    assert x[:, 0].equal(x[:, 1]) and x[:, 1].equal(x[:, 2])
    train = torch.stack([dm.train_set[i][0] for i in range(len(dm.train_set))]).double()
    np.testing.assert_allclose(train.mean(dim=(0, 2, 3)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(dim=(0, 2, 3)).numpy(), 1.0, atol=1e-4)
    xs, ys = dm.probe_batch(30, seed=5)
    assert np.bincount(ys.numpy()).tolist() == [3] * 10
    assert xs.equal(dm.probe_batch(30, seed=5)[0])


def upsample_2x_matrix(n: int) -> np.ndarray:
    """Bilinear 2x upsampling (half-pixel centres, edges clamped) as a (2n, n) matrix."""
    a = np.zeros((2 * n, n))
    for i in range(n):
        a[2 * i, max(i - 1, 0)] += 0.25
        a[2 * i, i] += 0.75
        a[2 * i + 1, i] += 0.75
        a[2 * i + 1, min(i + 1, n - 1)] += 0.25
    return a


def test_digits_resize_is_bilinear():
    dm = DigitsDataModule(resize=16, normalize=False, val_size=0, test_size=0.2)
    dm.setup()
    a = upsample_2x_matrix(8)
    # pixels are k/16 and weights products of 1/4, 3/4: every value is a multiple of 1/256
    ref = {np.rint(a @ img @ a.T * 16).astype(int).tobytes() for img in load_digits().images}
    got = dm.probe_set.images[:, 0].double().numpy()
    assert got.shape[1:] == (16, 16)
    assert np.allclose(got * 256, np.rint(got * 256), atol=1e-4)
    assert all(np.rint(img * 256).astype(int).tobytes() in ref for img in got)


def test_datamodule_trains_in_a_lightning_trainer(tmp_path):
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = DigitsDataModule(resize=16, channels=3, batch_size=32, augment=True)
    trainer = L.Trainer(
        fast_dev_run=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny(), datamodule=dm)
    assert trainer.state.finished


def test_train_samples_per_epoch_sets_the_epoch_length_and_repeats_images_evenly(tmp_path):
    import lightning as L

    path = tmp_path / "sorted.npz"  # class-sorted, like the shipped CIFAR-10 subset
    images = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1).repeat(2, axis=2).repeat(2, 3)
    np.savez(path, train_x=images, train_y=np.repeat(np.arange(4), 5))
    dm = ArraysDataModule(
        path, batch_size=10, val_size=0, normalize=False, train_samples_per_epoch=50
    )
    torch.manual_seed(0)
    first = torch.cat([x[:, 0, 0, 0] for x, _ in dm.train_dataloader()]).long()
    second = torch.cat([x[:, 0, 0, 0] for x, _ in dm.train_dataloader()]).long()
    assert len(first) == 50 and not first.equal(second)  # a fresh draw every epoch
    for draw in (first, second):  # two full passes over the 20 images, then half of a third
        assert sorted(draw[:20].tolist()) == sorted(draw[20:40].tolist()) == list(range(20))
        assert len(set(draw[40:].tolist())) == 10
    torch.manual_seed(0)  # seeded by the global RNG, as `shuffle=True` is
    assert torch.cat([x[:, 0, 0, 0] for x, _ in dm.train_dataloader()]).long().equal(first)
    assert "train_samples_per_epoch=50" in repr(dm)
    assert "train_samples_per_epoch=" not in repr(ArraysDataModule(path))  # older stores match

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 4))

        def training_step(self, batch, _):
            return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(Tiny(), datamodule=dm)
    assert trainer.num_training_batches == 5 and trainer.global_step == 5
    with pytest.raises(ValueError, match="`train_samples_per_epoch` must be a positive integer"):
        ArraysDataModule(path, train_samples_per_epoch=0)


# ---------------------------------------------------------------- arrays (.npz)
def test_arrays_hwc_uint8_and_nchw_float(tmp_path):
    rng = np.random.default_rng(2)
    hwc = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "a.npz"
    np.savez(
        path,
        train_x=hwc,
        train_y=np.arange(30) % 3,
        test_x=test,
        test_y=np.array([0, 1, 2, 0, 4], np.uint8),
    )
    dm = ArraysDataModule(path, batch_size=5, val_size=0.2, normalize=False)
    assert dm.num_classes == 5 and dm.input_shape == (3, 8, 8)
    x, y = collect_test(dm)
    np.testing.assert_allclose(x.numpy(), test.transpose(0, 3, 1, 2) / 255.0, atol=1e-7)
    assert y.tolist() == [0, 1, 2, 0, 4]
    dmn = ArraysDataModule(path, val_size=0.2)  # statistics of the training split
    dmn.setup()
    tr = dmn.probe_set.images.double() / 255
    assert np.allclose(dmn.mean, tr.mean(dim=(0, 2, 3)).numpy())
    nchw = tmp_path / "f.npz"
    floats = rng.random((12, 1, 6, 6)).astype(np.float32)
    np.savez(nchw, images=floats, labels=np.arange(12) % 2)
    dmf = ArraysDataModule(
        nchw, keys={"train_x": "images", "train_y": "labels"}, val_size=0, normalize=False
    )
    assert dmf.input_shape == (1, 6, 6)
    assert torch.cat([b[0] for b in dmf.train_dataloader()]).shape == (12, 1, 6, 6)
    assert dmf.probe_set.images.numpy().tobytes() == floats.tobytes()
    with pytest.raises(RuntimeError, match="no test set"):
        dmf.test_dataloader()
    aug = ArraysDataModule(path, augment=True, crop_padding=1, normalize=False, val_size=0)
    aug.setup()
    cands = all_crops_and_flips(aug.probe_set[0][0].numpy().astype(np.float64), pad=1)
    for _ in range(5):
        d = aug.train_set[0][0].numpy()
        assert np.abs(cands - d).reshape(len(cands), -1).max(1).min() < 1e-6


def test_arrays_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_x"):
        ArraysDataModule(tmp_path / "none.npz").setup()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="cannot be read"):
        ArraysDataModule(bad).setup()
    nokey = tmp_path / "nokey.npz"
    np.savez(nokey, x=np.zeros((2, 4, 4, 3), np.uint8), y=np.zeros(2, int))
    with pytest.raises(ValueError, match="no array 'train_x' \\(found \\['x', 'y'\\]\\)"):
        ArraysDataModule(nokey).setup()
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, train_x=np.zeros((3, 4, 4, 3), np.uint8), train_y=np.zeros(2, int))
    with pytest.raises(ValueError, match="3 train images but 2 labels"):
        ArraysDataModule(mismatch).setup()


# ---------------------------------------------------------------- layering
def test_data_layer_imports_no_upper_layer():
    package = Path(__import__("lga_lightning.data").data.__file__).parent
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("lga_lightning"):
                    assert name.startswith(("lga_lightning.data", "lga_lightning.core.probe")), (
                        f"{source.name} imports {name}"
                    )
