"""Unstructured pruning of a Keras model with SeparableConv2D and DepthwiseConv2D (saved as legacy .h5) reaches
their kernels and keeps the model at 0.3 per layer, where one global threshold empties its small-weight layers."""
import numpy as np
import pytest

from studio.core.base.jobs import run_job
from studio.core.optimize.optimize import optimize
from studio.core.recipe.recipe import Pruning, Recipe

CLASSES = 4


def textures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16x16 RGB images of four textures (horizontal, vertical, diagonal stripes, checks) at random phase, noisy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:16, 0:16]
    y = rng.integers(0, CLASSES, n)
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    waves = [yy, xx, xx + yy, None]
    x = np.empty((n, 16, 16, 3), np.float32)
    for i, (label, p) in enumerate(zip(y, phase, strict=True)):
        wave = np.sin(np.pi / 2 * waves[label] + p[0]) if label < 3 else \
            np.sign(np.sin(np.pi / 2 * xx + p[0]) * np.sin(np.pi / 2 * yy + p[0]))
        x[i] = (wave[..., None] + rng.normal(0, 0.3, (16, 16, 3))).astype(np.float32)
    return x, y


def train_h5(path: str, report=None) -> None:
    """Train the model a little, then move scale from the depthwise kernels into the layers after them (the
    function is unchanged: ReLU and the linear layers commute with a positive scale), as trained models often
    have it, and save it as legacy .h5."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(16, 3, activation="relu", name="stem"),
        keras.layers.SeparableConv2D(32, 3, activation="relu", name="separable"),
        keras.layers.DepthwiseConv2D(3, activation="relu", name="depthwise"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(CLASSES, name="classifier")])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x, y = textures(1536, seed=0)
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    sep, dw, fc = (model.get_layer(n) for n in ("separable", "depthwise", "classifier"))
    sep.depthwise_kernel.assign(sep.depthwise_kernel * 0.01)
    sep.pointwise_kernel.assign(sep.pointwise_kernel * 100)
    dw.kernel.assign(dw.kernel * 0.02)
    dw.bias.assign(dw.bias * 0.02)
    fc.kernel.assign(fc.kernel * 50)
    model.save(path)


def tflite_outputs(path: str, x: np.ndarray, report=None) -> np.ndarray:
    """The TFLite model's outputs on x, with the device runtime (one sample a run, as the model takes them)."""
    from studio.core.measure.runtimes import open_runner, predict
    from studio.core.tensors.samples import single
    from studio.core.tensors.shapes import resolve

    runner = open_runner(path)
    return predict(runner, single(x, resolve(runner.declared)[0]))[0]


def keras_outputs(path: str, x: np.ndarray, report=None) -> np.ndarray:
    from studio.core.inspect.keras_model import load_keras

    return np.asarray(load_keras(path).predict(x, verbose=0))


@pytest.fixture(scope="module")
def separable_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "separable.h5"
    run_job(train_h5, str(path), what="TensorFlow")
    return path


def agreement(ref: np.ndarray, got: np.ndarray) -> float:
    return float(np.mean(ref.argmax(1) == got.argmax(1)) * 100)


def test_per_layer_pruning_keeps_the_keras_model_and_global_does_not(separable_h5, tmp_path):
    x, y = textures(400, seed=1)  # held-out samples
    ref = run_job(keras_outputs, str(separable_h5), x, what="TensorFlow")
    assert np.mean(ref.argmax(1) == y) > 0.8  # a model that learned something, so agreement means something
    results = {}
    np.savez(tmp_path / "held_out.npz", x=x)  # the gate judges on real samples, not on synthetic noise
    for scope in ("layer", "global"):
        recipe = Recipe(target="tflite", pruning=Pruning("unstructured", 0.3, scope=scope))
        doc = optimize(separable_h5, recipe, tmp_path / scope, calib=str(tmp_path / "held_out.npz"),
                       allow_degraded=scope == "global")
        assert bool(doc["fidelity"]["degraded"]) == (scope == "global")  # the gate catches the global damage
        got = run_job(tflite_outputs, str(tmp_path / scope / "model.tflite"), x, what="ai-edge-litert")
        step = next(s for s in doc["steps"] if s["name"].startswith("unstructured pruning"))
        results[scope] = agreement(ref, got), {r["layer"].removeprefix("sequential/"): r["sparsity"]
                                               for r in step["layers"]}
    per_layer, layers = results["layer"]
    global_agreement, global_layers = results["global"]
    said = f"top-1 agreement: per layer {per_layer:.1f}%, global {global_agreement:.1f}%"
    assert per_layer >= 90, said
    assert set(layers) == {"stem/kernel", "separable/depthwise_kernel", "separable/pointwise_kernel",
                           "depthwise/kernel", "classifier/kernel"}
    assert all(abs(s - 0.3) < 0.02 for s in layers.values())
    assert global_layers["separable/depthwise_kernel"] == 1.0 and global_layers["depthwise/kernel"] == 1.0
    assert global_agreement < per_layer - 20, said
