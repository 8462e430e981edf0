"""Datasets and preprocessing: .npz and image folders; the default only reshapes and casts."""
import numpy as np
import pytest
from PIL import Image

from studio.core.base.errors import DataError
from studio.core.data.datasets import Dataset, load_dataset
from studio.core.data.feeding import fit
from studio.core.recipe.recipe import Preprocess
from studio.core.tensors.spec import TensorInfo


def prepare(x, shape, pre, source="d.npz"):
    """The samples of `x` as a one-input model of `shape` takes them."""
    ds = Dataset(x, None, None, source, "npz")
    return fit(ds, [TensorInfo("x", list(shape), "float32")], pre=pre).samples.arrays[0]


def test_default_preprocessing_only_reshapes(tmp_path):
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    out = prepare(x, (1, 1, 28, 28), Preprocess())
    assert out.shape == (2, 1, 28, 28) and out.dtype == np.float32
    assert np.array_equal(out.reshape(2, 28, 28), x.astype(np.float32))  # no scaling


def test_explicit_scaling_mean_std_and_layout():
    x = np.full((1, 4, 4, 3), 255, np.uint8)
    pre = Preprocess(scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), layout="nchw")
    out = prepare(x, (1, 3, 4, 4), pre)
    assert out.shape == (1, 3, 4, 4)
    assert np.allclose(out[0, :, 0, 0], [2.0, 1.0, 0.5])


def test_shape_mismatch_says_what_to_set():
    with pytest.raises(DataError, match="set resize or layout"):
        prepare(np.zeros((1, 28, 28)), (1, 3, 224, 224), Preprocess(), "d.npz")


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "noy.npz", x=np.zeros((3, 4)))
    assert load_dataset(tmp_path / "noy.npz").y is None
    np.savez(tmp_path / "bad.npz", y=np.zeros(3))
    with pytest.raises(DataError, match="no array named 'x'"):
        load_dataset(tmp_path / "bad.npz")
    np.savez(tmp_path / "len.npz", x=np.zeros((3, 4)), y=np.zeros(2))
    with pytest.raises(DataError, match="3 samples but 'y' has 2"):
        load_dataset(tmp_path / "len.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_dataset(tmp_path / "junk.npz")


def write_digit_folder(root, samples, per_class=3, with_labels=True):
    """A folder of real MNIST PNGs in class subfolders, as a user would make one."""
    val = np.load(samples["dataset"])
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for i, idx in enumerate(np.flatnonzero(val["y"] == c)[:per_class]):
            Image.fromarray(val["x"][idx]).save(root / str(c) / f"{i}.png")
    if with_labels:
        (root / "labels.txt").write_text("\n".join(str(c) for c in range(10)) + "\n")
    return root


def test_image_folder_with_classes_and_unlabelled(tmp_path, samples):
    root = write_digit_folder(tmp_path / "digits", samples)
    ds = load_dataset(root)
    assert ds.x.shape == (30, 28, 28) and ds.labels[:3] == ["0", "1", "2"] and ds.classification
    assert sorted(np.bincount(ds.y).tolist()) == [3] * 10
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(ds.x[0]).save(flat / "a.png")
    Image.fromarray(ds.x[1]).save(flat / "b.png")
    unl = load_dataset(flat)
    assert unl.y is None and unl.x.shape == (2, 28, 28)
    resized = load_dataset(root, resize=(14, 14), limit=10)
    assert resized.x.shape == (10, 14, 14)
