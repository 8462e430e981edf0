"""The sample dataset is real MNIST, split deterministically; sample models are cached and accurate."""
import json
from pathlib import Path

import numpy as np

from studio.core.app.samples import ensure_samples, make_dataset


def test_dataset_is_real_split_and_deterministic(samples, tmp_path):
    train, val = np.load(samples["train_dataset"]), np.load(samples["dataset"])
    assert train["x"].dtype == np.uint8 and train["x"].shape == (4000, 28, 28) and val["x"].shape == (1000, 28, 28)
    assert np.bincount(val["y"]).tolist() == [100] * 10
    assert train["x"].max() == 255 and 0.05 < (train["x"] > 0).mean() < 0.4  # ink on paper, not noise
    again_train, again_val = make_dataset(tmp_path)
    assert np.array_equal(np.load(again_val)["x"], val["x"]) and np.array_equal(np.load(again_train)["y"],
                                                                               train["y"])
    assert not set(map(bytes, val["x"].reshape(1000, -1))) & set(map(bytes, train["x"].reshape(4000, -1)))


def test_samples_are_cached_and_accurate(samples):
    assert samples["torch_accuracy"] > 95 and samples["keras_accuracy"] > 95
    manifest = json.loads((Path(samples["dataset"]).parent / "samples.json").read_text())
    assert manifest == samples
    calls = []
    assert ensure_samples(report=lambda f, m: calls.append(m)) == samples and calls == []  # no retraining
