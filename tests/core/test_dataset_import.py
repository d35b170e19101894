"""Importing your own images (core/dataset_import.py) and `lvm-studio data import`."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from lvm_studio.cli import main
from lvm_studio.core.data import load_mnist
from lvm_studio.core.dataset_import import (
    MAX_PIXELS,
    DatasetImportError,
    ImportCancelled,
    ImportOptions,
    import_dataset,
    import_to_file,
)
from lvm_studio.core.images import BOX, SIDE, center_by_mass_in, centre_of_mass


def _bar(h: int, w: int, col: int) -> np.ndarray:
    """Dark ink on white paper, a vertical bar (as a scan of a drawing would be)."""
    a = np.full((h, w), 255, np.uint8)
    a[h // 5 : h - h // 5, col : col + max(2, w // 8)] = 0
    return a


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims width × height (a decompression bomb needs no more to be dangerous)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture
def folder(tmp_path):
    """cats/ and dogs/: PNGs of two sizes, a colour JPEG, a text file named .png, a README."""
    root = tmp_path / "pictures"
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(_bar(40, 30, 5 + i)).save(root / "cats" / f"small{i}.png")
        Image.fromarray(_bar(90, 90, 20 + 3 * i)).save(root / "dogs" / f"large{i}.png")
    colour = np.zeros((50, 60, 3), np.uint8)
    colour[..., :] = (250, 240, 230)  # light paper
    colour[10:40, 20:30] = (200, 0, 0)  # a red bar: dark in luma, so it is ink
    Image.fromarray(colour).save(root / "cats" / "colour.jpg", quality=95)
    (root / "dogs" / "notes.png").write_text("this is not a picture")
    (root / "dogs" / "README.txt").write_text("hello")
    return root


def test_a_folder_with_label_subfolders(folder, tmp_path):
    result = import_dataset(folder, ImportOptions(test_fraction=0.25, seed=3))
    assert result.side == SIDE and result.x_train.dtype == np.uint8
    assert sorted(result.y_train.tolist()) != result.y_train.tolist()  # shuffled: validation is not one label
    assert result.n_images == 9 and len(result.x_test) == 2  # round(9 · 0.25)
    assert result.label_names == ("cats", "dogs") and result.labelled
    assert result.label_counts() == {"cats": 5, "dogs": 4}
    assert {(r.path, r.reason.split(" (")[0]) for r in result.refused} == {
        ("dogs/notes.png", "not an image Pillow can read"),
        ("dogs/README.txt", "not a PNG, JPEG or BMP file"),
    }
    assert result.sizes == {(40, 30): 4, (90, 90): 4, (50, 60): 1}
    # every image: ink bright on black, centred by mass as MNIST is
    x = np.concatenate([result.x_train, result.x_test]).astype(np.float64) / 255
    assert (x[:, 0, :] == 0).all() and (x[:, :, 0] == 0).all()
    for img in x:
        r, c = centre_of_mass(img)
        assert abs(r - 14) <= 1 and abs(c - 14) <= 1
        rows = np.nonzero(img.max(1) > 1e-3)[0]
        assert rows[-1] - rows[0] + 1 <= BOX
    # the same seed gives the same split; the file round-trips through load_mnist
    again = import_dataset(folder, ImportOptions(test_fraction=0.25, seed=3))
    np.testing.assert_array_equal(again.y_test, result.y_test)
    data = load_mnist(result.save(tmp_path / "out.npz"))
    assert data.label_names == ("cats", "dogs") and data.labelled and data.side == SIDE
    n = len(data.x_train) + len(data.x_val)
    np.testing.assert_array_equal(np.concatenate([data.x_train, data.x_val]), result.x_train)
    assert n == 7


def test_a_larger_side_and_unlabelled_images(tmp_path):
    for i in range(5):
        Image.fromarray(_bar(64, 64, 10 + 4 * i)).save(tmp_path / f"{i}.bmp")
    result = import_dataset(tmp_path, ImportOptions(side=48))
    assert result.x_train.shape[1:] == (48, 48) and not result.labelled and result.label_names == ()
    data = load_mnist(result.save(tmp_path / "out.npz"))
    assert not data.labelled and data.n_pixels == 48 * 48
    # keeping the images' own size; mixed sizes then have no common size
    kept = import_dataset(tmp_path, ImportOptions(side=None, centre=False))  # grey levels as they are
    assert kept.side == 64
    files = sorted(int(np.asarray(Image.open(p), np.int64).sum()) for p in tmp_path.glob("*.bmp"))
    assert sorted(np.concatenate([kept.x_train, kept.x_test]).reshape(5, -1).sum(1).tolist()) == files
    Image.fromarray(_bar(32, 32, 3)).save(tmp_path / "odd.png")
    with pytest.raises(DatasetImportError, match=r"mixed image sizes \(32×32 \(1\), 64×64 \(5\)\)"):
        import_dataset(tmp_path, ImportOptions(side=None))


def test_centring_scales_with_the_side():
    img = np.zeros((100, 60))
    img[20:80, 10:40] = 1.0
    for side in (16, 28, 64):
        out = center_by_mass_in(img, side)
        rows = np.nonzero(out.max(1) > 1e-3)[0]
        assert out.shape == (side, side) and rows[-1] - rows[0] + 1 == round(BOX * side / SIDE)
        r, c = centre_of_mass(out)
        assert abs(r - side / 2) <= 0.5 and abs(c - side / 2) <= 0.5


def test_array_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((20, 32, 32, 3), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    result = import_dataset(tmp_path / "x.npy", ImportOptions(side=16, test_fraction=0.2))
    assert result.x_train.shape == (16, 16, 16) and len(result.x_test) == 4 and not result.labelled
    # not centred by default: the area average of the luma
    grey = x @ np.array([0.299, 0.587, 0.114])  # (20, 32, 32)
    expect = grey.reshape(20, 16, 2, 16, 2).mean((2, 4))
    perm = np.random.default_rng(0).permutation(20)  # the seeded split, in shuffled order
    np.testing.assert_allclose(result.x_test / 255, expect[perm[:4]], atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(result.x_train / 255, expect[perm[4:]], atol=0.5 / 255 + 1e-6)
    # an .npz with images and labels; an MNIST-style .npz keeps its own split
    np.savez(tmp_path / "xy.npz", images=(x[..., 0] * 255).astype(np.uint8), labels=np.arange(20) % 3)
    labelled = import_dataset(tmp_path / "xy.npz", ImportOptions(side=None))
    assert labelled.side == 32 and labelled.label_names == ("0", "1", "2")
    mnist = {"x_train": np.zeros((6, 28, 28), np.uint8), "y_train": np.arange(6, dtype=np.uint8)}
    np.savez(tmp_path / "m.npz", **mnist, x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))
    kept = import_dataset(tmp_path / "m.npz")
    assert (len(kept.x_train), len(kept.x_test)) == (6, 2) and kept.y_train.tolist() == list(range(6))


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "the folder is empty"),
        ("non_images", "no usable images among 2 file(s)"),
        ("text_png", "not an image Pillow can read"),
        ("bomb", f"more than {MAX_PIXELS:,} pixels, too large to decode safely (Image size (400000000 pixels)"),
        ("huge_header", "huge.npy"),  # core.array_files checks the header's claim against the file
        ("float_range", "float images must lie in [0, 1]"),
        ("one_image", "only 1 usable image"),
        ("missing", "no such folder or file"),
    ],
)
def test_bad_input_gets_one_clear_line_and_writes_nothing(tmp_path, case, message):
    source = tmp_path / "src"
    source.mkdir()
    if case == "non_images":
        (source / "a.txt").write_text("x")
        (source / "b.csv").write_text("1,2")
    elif case == "text_png":
        (source / "a.png").write_text("not a picture")
    elif case == "bomb":
        _png_header_only(source / "bomb.png", 20_000, 20_000)
    elif case == "huge_header":
        # a .npy whose header claims 10¹² uint8 elements, followed by 16 bytes
        header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 1000, 1000), }"
        header = header + " " * (63 - (10 + len(header)) % 64) + "\n"
        source = tmp_path / "huge.npy"
        source.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 16)
    elif case == "float_range":
        source = tmp_path / "f.npy"
        np.save(source, np.full((5, 28, 28), 2.0, np.float32))
    elif case == "one_image":
        Image.fromarray(_bar(28, 28, 4)).save(source / "a.png")
    elif case == "missing":
        source = tmp_path / "nowhere"
    out = tmp_path / "data.npz"
    out.write_bytes(b"previous dataset")
    with pytest.raises(DatasetImportError) as info:
        import_to_file(source, out, ImportOptions())
    assert message in str(info.value) and "\n" not in str(info.value)
    assert out.read_bytes() == b"previous dataset"  # the previous file is whole, and no temporary is left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cancel_writes_nothing(folder, tmp_path):
    class Ctx:
        calls = 0

        def report(self, fraction, payload=None):
            self.calls += 1

        def cancelled(self):
            return self.calls > 0

    with pytest.raises(ImportCancelled):
        import_to_file(folder, tmp_path / "out.npz", ctx=Ctx())
    assert not (tmp_path / "out.npz").exists()


def test_cli_import_then_train_and_eval(folder, tmp_path, capsys):
    out = tmp_path / "pets.npz"
    assert main(["data", "import", str(folder), "--out", str(out), "--size", "16", "--test-fraction", "0.3"]) == 0
    text = capsys.readouterr().out
    assert "-> 16×16 grey" in text and "refused dogs/notes.png: not an image" in text and "cats: 5, dogs: 4" in text
    ckpt = tmp_path / "m.pt"
    args = ["train", "--data", str(out), "--out", str(ckpt), "--epochs", "1", "--latent-dim", "2", "--hidden", "8"]
    assert main([*args, "--batch-size", "4", "--eval-n", "3", "--eval-k", "2", "--quiet"]) == 0
    assert main(["eval", str(ckpt), "--data", str(out), "--k", "2", "--json"]) == 0
    assert '"n": 3' in capsys.readouterr().out
    # a model of another size is refused with the reason
    assert main(["eval", str(ckpt), "--k", "2"]) == 2
    assert "takes 16×16 images (256 pixels) but the dataset's are 28×28" in capsys.readouterr().err
    assert main(["data", "import", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "no such folder or file" in capsys.readouterr().err
