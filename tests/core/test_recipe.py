"""Recipes: TOML round trip, validation with reasons, migration, and refusal of impossible combinations."""
import dataclasses

import pytest

from studio.core.base.errors import RecipeError
from studio.core.recipe.recipe import (
    SCHEMA_VERSION,
    CalibMethod,
    Preprocess,
    PruneMethod,
    PruneScope,
    Pruning,
    Quantization,
    QuantMode,
    Recipe,
    Target,
    check_source,
)


def test_toml_round_trip(tmp_path):
    recipe = Recipe(target="tflite", pruning=Pruning("structured", 0.4, scope="global", keep_layers=("1",),
                                                     layer_ratios={"4": 0.25}, finetune_epochs=2),
                    quantization=Quantization("int8", per_channel=False, io="int8", calib_samples=50),
                    preprocess=Preprocess(scale=1 / 255, mean=(0.5,), std=(0.25,), resize=(28, 28), layout="nchw"))
    path = tmp_path / "r.toml"
    recipe.save(path)
    text = path.read_text()
    assert f"schema_version = {SCHEMA_VERSION}" in text and 'target = "tflite"' in text
    again = Recipe.load(path)
    assert again == recipe and again.pruning.method is PruneMethod.STRUCTURED
    assert again.quantization.mode is QuantMode.INT8 and again.preprocess.resize == (28, 28)


def test_frozen_and_labelled():
    recipe = Recipe(quantization=Quantization("dynamic"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.target = Target.TFLITE
    assert recipe.label == "onnx dynamic"
    assert Recipe(pruning=Pruning("structured", 0.5)).label == "onnx fp32 prune0.50"


@pytest.mark.parametrize("build, fragment", [
    (lambda: Pruning("structured", 1.5), "below 1"),
    (lambda: Pruning("structured", 0.0), "needs a ratio above 0"),
    (lambda: Quantization("int4"), "quantization must be one of none, dynamic, int8, fp16"),
    (lambda: Recipe(target="coreml"), "target must be one of onnx, tflite"),
    (lambda: Recipe(target="tflite", quantization=Quantization("int8", calibration="entropy")),
     "TFLite quantizers calibrate with min/max"),
    (lambda: Preprocess(std=(0.0,)), "std values must not be 0"),
])
def test_invalid_values_are_refused_with_a_reason(build, fragment):
    with pytest.raises(RecipeError, match=fragment):
        build()


def test_bad_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("target = 'onnx'\n[quantization]\nmode = 'dynamic'\nbits = 4\n")
    with pytest.raises(RecipeError) as err:
        Recipe.load(bad)
    assert str(bad) in str(err.value) and "unknown key(s) in [quantization]: bits" in str(err.value)
    bad.write_text("target = \n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        Recipe.load(bad)
    bad.write_text("schema_version = 9\n")
    with pytest.raises(RecipeError, match="newer than this studio"):
        Recipe.load(bad)


def test_migration_from_unversioned_draft():
    recipe = Recipe.from_dict({"target": "tflite", "quantization": "fp16", "prune_ratio": 0.25})
    assert recipe.quantization.mode is QuantMode.FP16 and recipe.pruning.method is PruneMethod.STRUCTURED
    assert recipe.pruning.ratio == 0.25 and recipe.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("pruning, scope", [
    ({"method": "unstructured", "ratio": 0.3, "scope": "per_layer"}, PruneScope.GLOBAL),  # v1 ignored it
    ({"method": "unstructured", "ratio": 0.3, "scope": "global"}, PruneScope.GLOBAL),
    ({"method": "structured", "ratio": 0.3, "scope": "per_layer"}, PruneScope.LAYER),
    ({"method": "structured", "ratio": 0.3}, PruneScope.GLOBAL),  # version 1's default
])
def test_migration_from_version_1_keeps_what_the_recipe_did(pruning, scope):
    doc = {"schema_version": 1, "pruning": dict(pruning)}
    assert Recipe.from_dict(doc).pruning.scope is scope
    assert doc["pruning"] == pruning  # the caller's document is left alone


def test_scope_defaults_to_per_layer_and_refuses_unknown_names():
    assert Pruning("unstructured", 0.3).scope is PruneScope.LAYER
    with pytest.raises(RecipeError, match="pruning scope must be one of layer, global"):
        Pruning("unstructured", 0.3, scope="per_layer")


@pytest.mark.parametrize("recipe, fmt, kwargs, fragment", [
    (Recipe(target="tflite", pruning=Pruning("structured", 0.5)), "tflite", {}, "cannot be applied to a TFLite"),
    (Recipe(pruning=Pruning("structured", 0.5)), "keras", {}, "cannot prune Keras 3"),
    (Recipe(pruning=Pruning("structured", 0.5)), "onnx", {}, "needs a PyTorch model"),
    (Recipe(pruning=Pruning("structured", 0.5)), "torchscript", {}, "TorchScript modules cannot be pruned"),
    (Recipe(quantization=Quantization("int8")), "tflite", {"quantized_source": True}, "already quantized"),
    (Recipe(target="tflite", quantization=Quantization("int8", io="float")), "torch_export", {"has_module": True},
     "use io = 'int8'"),
    (Recipe(pruning=Pruning("unstructured", 0.5, finetune_epochs=2)), "onnx", {}, "recovery step"),
])
def test_impossible_combinations_are_refused(recipe, fmt, kwargs, fragment):
    with pytest.raises(RecipeError, match=fragment):
        check_source(recipe, fmt, **kwargs)


def test_possible_combinations_pass():
    check_source(Recipe(target="tflite", quantization=Quantization("int8", io="float")), "keras")
    check_source(Recipe(pruning=Pruning("structured", 0.5)), "torch_state_dict", has_module=True)
    check_source(Recipe(pruning=Pruning("unstructured", 0.5)), "tflite")
    assert CalibMethod("percentile") is CalibMethod.PERCENTILE
