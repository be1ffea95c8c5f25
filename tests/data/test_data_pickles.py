"""Dataset batch pickles are read as data: official formats load, crafted payloads never run.

The "official" files are written opcode by opcode the way Python 2's ``cPickle`` wrote the
CIFAR batches (``numpy.core.multiarray._reconstruct``, ``str`` keys and image bytes read back
with ``latin1``), and the way Python 3 writes them (protocol 2, ``bytes`` keys through
``_codecs.encode``; protocols 4 and 5); the expected arrays are the ones the test started from.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from lga_lightning.data import CIFAR10DataModule
from lga_lightning.data._files import load_pickle


def _short_string(text: bytes) -> bytes:
    return b"U" + bytes([len(text)]) + text  # SHORT_BINSTRING: a Python 2 str


def py2_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A protocol-2 pickle of ``{'data': images, 'labels': labels}`` as Python 2 writes it."""
    n, width = images.shape
    dtype = (
        b"cnumpy\ndtype\n"
        + _short_string(b"u1")
        + b"K\x00K\x01\x87R"  # dtype('u1', 0, 1)
        + b"(K\x03"
        + _short_string(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    raw = images.tobytes()
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + b"K\x00\x85"  # (0,)
        + _short_string(b"b")
        + b"\x87R"  # _reconstruct(ndarray, (0,), 'b')
        + b"(K\x01"  # state: version 1
        + b"M"
        + struct.pack("<H", n)
        + b"M"
        + struct.pack("<H", width)
        + b"\x86"  # shape
        + dtype
        + b"\x89"  # NEWFALSE: C order
        + b"T"
        + struct.pack("<I", len(raw))
        + raw  # BINSTRING: the image bytes as a str
        + b"tb"
    )
    items = b"".join(b"K" + bytes([y]) for y in labels)
    return (
        b"\x80\x02}("
        + _short_string(b"data")
        + array
        + _short_string(b"labels")
        + b"]("
        + items
        + b"e"
        + _short_string(b"batch_label")
        + _short_string(b"training batch 1 of 5")
        + b"u."
    )


class Payload:
    """Unpickling this creates ``marker``: what a crafted batch file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def crafted_batch(marker: Path) -> bytes:
    return pickle.dumps({b"data": Payload(marker), b"labels": [0]}, protocol=2)


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (4, 3 * 32 * 32), dtype=np.uint8)


def test_python2_official_format_loads(tmp_path, images):
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_batch(images, [3, 1, 4, 1]))
    data = load_pickle(path, "CIFAR10DataModule", "")
    assert sorted(data) == ["batch_label", "data", "labels"]
    assert data["data"].dtype == np.uint8 and data["data"].shape == (4, 3072)
    np.testing.assert_array_equal(data["data"], images)
    assert data["labels"] == [3, 1, 4, 1]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python3_pickles_with_bytes_keys_load(tmp_path, images, protocol):
    batch = {
        b"data": images,
        b"labels": [np.int64(2), 7, 0, 9],
        b"batch_label": b"testing batch 1 of 1",
        b"filenames": [b"a.png", b"b.png", b"c.png", b"d.png"],
        b"mean": np.float32(0.5),
    }
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    data = load_pickle(path, "CIFAR10DataModule", "")
    np.testing.assert_array_equal(data["data"], images)
    assert [int(y) for y in data["labels"]] == [2, 7, 0, 9]
    assert data["filenames"][1] == b"b.png" and data["batch_label"] == b"testing batch 1 of 1"


@pytest.mark.parametrize(
    "payload",
    [
        lambda m: crafted_batch(m),
        # a GLOBAL to a module function, and _codecs.encode with a codec other than latin-1
        lambda m: b"\x80\x02cos\nsystem\nX\x05\x00\x00\x00touch\x85R.",
        lambda m: b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.",
    ],
    ids=["reduce-open", "os-system", "codecs-rot13"],
)
def test_crafted_payload_is_refused_without_running(tmp_path, payload):
    marker = tmp_path / "marker"
    path = tmp_path / "data_batch_1"
    path.write_bytes(payload(marker))
    with pytest.raises(ValueError, match="refused .*data_batch_1") as info:
        load_pickle(path, "CIFAR10DataModule", "Replace the folder.")
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_datamodule_refuses_a_crafted_batch(tmp_path, images):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(py2_batch(images, [0, 1, 2, 3]))
    assert len(CIFAR10DataModule(tmp_path, val_size=0).probe_batch(4, 0)[0]) == 4
    marker = tmp_path / "marker"
    (folder / "data_batch_3").write_bytes(crafted_batch(marker))
    with pytest.raises(ValueError, match="CIFAR10DataModule: refused .*data_batch_3.*io.open"):
        CIFAR10DataModule(tmp_path).setup()
    assert not marker.exists()
