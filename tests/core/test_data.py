"""The MNIST loader: the shipped file's splits, binarization, and one clear DataError per bad file."""

import os
import zipfile

import numpy as np
import pytest
import torch

from lvm_studio.core.data import N_PIXELS, TEST_BINARIZATION_SEED, DataError, binarize, default_data_path, load_mnist

# --- the shipped file -----------------------------------------------------------------


def test_split_sizes_of_the_shipped_file(mnist):
    sizes = {"train": 55000, "val": 5000, "test": 10000}
    for split, n in sizes.items():
        x, y = mnist.split(split)
        assert x.shape == (n, 28, 28) and x.dtype == np.uint8
        assert y.shape == (n,)
        assert set(np.unique(y)) == set(range(10)), f"{split} split lacks some digit"


def test_validation_is_the_tail_of_the_training_file(mnist):
    with np.load(default_data_path()) as f:
        x_train, x_test = f["x_train"], f["x_test"]
    np.testing.assert_array_equal(mnist.x_train, x_train[:55000])
    np.testing.assert_array_equal(mnist.x_val, x_train[55000:])
    np.testing.assert_array_equal(mnist.x_test, x_test)


def test_unknown_split_is_refused(mnist):
    with pytest.raises(ValueError, match="unknown split"):
        mnist.split("training")


def test_float_images_are_grey_levels(mnist):
    x = mnist.float_images("val")
    assert x.shape == (5000, N_PIXELS) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    torch.testing.assert_close(x[3].reshape(28, 28), torch.from_numpy(mnist.x_val[3]).float() / 255)


def test_fixed_binarization_is_identical_across_calls_and_seeds_differ(mnist):
    a = mnist.binarized("val")
    b = mnist.binarized("val")
    assert a.shape == (5000, N_PIXELS)
    assert torch.equal(a, b)
    assert torch.equal(a, mnist.binarized("val", seed=TEST_BINARIZATION_SEED))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    other = mnist.binarized("val", seed=TEST_BINARIZATION_SEED + 1)
    assert not torch.equal(a, other)
    # a binarization, not a threshold: the share of ones follows the grey levels
    assert abs(a.mean().item() - mnist.float_images("val").mean().item()) < 0.005


def test_dynamic_binarization_differs_per_call(mnist):
    probs = mnist.float_images("test")[:200]  # (200, 784)
    a, b = binarize(probs), binarize(probs)
    assert not torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(a.mean().item() - probs.mean().item()) < 0.01
    # black pixels stay black, white ones stay white
    assert (a[probs == 0] == 0).all() and (a[probs == 1] == 1).all()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(binarize(probs, g1), binarize(probs, g2))


# --- bad files: each one DataError naming the problem -----------------------------------


def _valid_arrays(n_train=60, n_test=10):
    g = np.random.default_rng(0)
    return {
        "x_train": g.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": g.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": g.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": g.integers(0, 10, n_test, dtype=np.uint8),
    }


def _write(tmp_path, name="mnist.npz", drop=(), **overrides):
    arrays = {**_valid_arrays(), **overrides}
    for key in drop:
        del arrays[key]
    path = tmp_path / name
    with open(path, "wb") as f:  # a file object, so numpy keeps the name as given
        np.savez(f, **arrays)
    return path


def _load_error(path, **kw) -> str:
    """Load, expect DataError, check that it hides numpy's traceback, return its message."""
    with pytest.raises(DataError) as info:
        load_mnist(path, **kw)
    exc = info.value
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__), (
        "a DataError must not chain numpy's exception into the user's traceback"
    )
    message = str(exc)
    assert str(path) in message, "the message names the file"
    return message


def test_the_small_valid_file_loads(tmp_path):
    """The bad files below differ from this one in exactly one respect."""
    data = load_mnist(_write(tmp_path), n_validation=10)
    assert len(data.x_train) == 50 and len(data.x_val) == 10 and len(data.x_test) == 10


def test_missing_file(tmp_path):
    message = _load_error(tmp_path / "nowhere.npz")
    assert "no such data file" in message


def test_a_directory_is_not_a_data_file(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    assert "no such data file" in _load_error(tmp_path / "dir.npz")


@pytest.mark.parametrize(
    "content", [os.urandom(4096), b"", b"PK\x03\x04 truncated zip"], ids=["random-bytes", "empty", "truncated-zip"]
)
def test_not_an_npz(tmp_path, content):
    path = tmp_path / "mnist.npz"
    path.write_bytes(content)
    assert "not a readable .npz archive" in _load_error(path)


def test_a_plain_npy_array_is_not_an_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((3, 28, 28), np.uint8))
    assert "not a readable .npz archive" in _load_error(path)


def test_a_zip_without_arrays_lists_the_missing_keys(tmp_path):
    path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    message = _load_error(path)
    assert "missing key(s)" in message and "x_train" in message and "y_test" in message


def test_missing_keys(tmp_path):
    message = _load_error(_write(tmp_path, drop=("y_test", "y_train")))
    assert "missing key(s) y_train, y_test" in message
    assert "found: x_train, x_test" in message


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = _write(tmp_path, x_train=np.array([None, 1], dtype=object))
    assert "'x_train'" in _load_error(path) and "refused for safety" in _load_error(path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_images_are_refused(tmp_path, dtype):
    message = _load_error(_write(tmp_path, x_test=np.zeros((10, 28, 28), dtype)), n_validation=10)
    assert "'x_test'" in message and np.dtype(dtype).name in message and "uint8" in message


def test_wrong_label_dtype(tmp_path):
    message = _load_error(_write(tmp_path, y_train=np.zeros(60, np.int64)), n_validation=10)
    assert "'y_train'" in message and "int64" in message and "labels" in message


def test_images_of_the_wrong_size(tmp_path):
    # an imported dataset may have square images of 8 to 64 pixels a side; others are refused
    for shape in ((60, 65, 65), (60, 28, 32)):
        message = _load_error(_write(tmp_path, x_train=np.zeros(shape, np.uint8)), n_validation=10)
        assert "'x_train'" in message and str(shape[1:]) in message and "28x28" in message


def test_square_images_of_another_side_load_and_must_match_the_test_set(tmp_path):
    path = _write(tmp_path, x_train=np.zeros((60, 32, 32), np.uint8), x_test=np.zeros((10, 32, 32), np.uint8))
    data = load_mnist(path, n_validation=10)
    assert (data.side, data.n_pixels) == (32, 1024) and data.float_images("val").shape == (10, 1024)
    message = _load_error(_write(tmp_path, x_train=np.zeros((60, 32, 32), np.uint8)), n_validation=10)
    assert "(32, 32)" in message and "(28, 28)" in message


def test_flattened_images(tmp_path):
    message = _load_error(_write(tmp_path, x_test=np.zeros((10, 784), np.uint8)), n_validation=10)
    assert "'x_test'" in message and "(10, 784)" in message and "(N, 28, 28)" in message


def test_two_dimensional_labels(tmp_path):
    message = _load_error(_write(tmp_path, y_test=np.zeros((10, 1), np.uint8)), n_validation=10)
    assert "'y_test'" in message and "(10, 1)" in message and "(N,)" in message


@pytest.mark.parametrize("split", ["train", "test"])
def test_label_and_image_counts_must_match(tmp_path, split):
    n = 60 if split == "train" else 10
    path = _write(tmp_path, **{f"y_{split}": np.zeros(n - 1, np.uint8)})
    message = _load_error(path, n_validation=10)
    assert f"{n} {split} images but {n - 1} {split} labels" in message


def test_too_few_training_images_for_the_validation_split(tmp_path):
    message = _load_error(_write(tmp_path), n_validation=5000)
    assert "only 60 training images" in message and "5000" in message


def test_an_imported_set_holds_out_a_tenth_for_validation(tmp_path):
    data = load_mnist(_write(tmp_path, labelled=np.array(True)))  # 60 training images: 6 held out, not 5000
    assert (len(data.x_train), len(data.x_val)) == (54, 6) and data.labelled


def test_empty_test_set(tmp_path):
    path = _write(tmp_path, x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8))
    assert "test set is empty" in _load_error(path, n_validation=10)


def test_labels_outside_0_to_9_are_refused(tmp_path):
    arrays = _valid_arrays()
    path = _write(tmp_path, y_train=np.full(len(arrays["y_train"]), 99, np.uint8))
    message = _load_error(path, n_validation=10)
    assert "y_train" in message and "99" in message and "0..9" in message
