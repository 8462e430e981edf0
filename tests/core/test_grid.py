"""Grid: the candidates a sweep runs are exactly the product of its choices, with the Recipe's own enums."""
import itertools

import pytest

from studio.core.base.errors import RecipeError
from studio.core.recipe.grid import Grid
from studio.core.recipe.recipe import Preprocess, PruneMethod, Quantization, QuantMode, Recipe, Target


def test_candidates_are_the_full_product_with_typed_recipes():
    grid = Grid(targets=("onnx", "tflite"), quant=("none", "int8"), prune=(0.0, 0.25), prune_method="unstructured")
    assert grid.targets == (Target.ONNX, Target.TFLITE) and grid.prune_method is PruneMethod.UNSTRUCTURED
    got = {(c.recipe.target, c.recipe.pruning.ratio, c.recipe.quantization.mode) for c in grid.candidates()}
    want = set(itertools.product(grid.targets, (0.0, 0.25), (QuantMode.NONE, QuantMode.INT8)))
    assert got == want and len(grid.candidates()) == len(want)
    ids = [c.id for c in grid.candidates()]
    assert len(set(ids)) == len(ids) and "tflite-fp32-p0.25" in ids and "onnx-int8-p0.00" in ids
    for c in grid.candidates():
        assert (c.recipe.pruning.method is PruneMethod.UNSTRUCTURED) == (c.recipe.pruning.ratio > 0)


def test_candidates_keep_the_base_recipe_and_group_by_float_stage():
    base = Recipe(quantization=Quantization("none", calib_samples=50), preprocess=Preprocess(scale=1 / 255))
    grid = Grid(targets=("onnx",), quant=("none", "dynamic", "int8"), prune=(0.0, 0.5), base=base)
    groups = {}
    for c in grid.candidates():
        groups.setdefault(c.group, []).append(c.recipe.quantization.mode)
        assert c.recipe.preprocess == base.preprocess
        assert c.recipe.quantization.calib_samples == base.quantization.calib_samples
    assert groups == {("onnx", 0.0): [QuantMode.NONE, QuantMode.DYNAMIC, QuantMode.INT8],
                      ("onnx", 0.5): [QuantMode.NONE, QuantMode.DYNAMIC, QuantMode.INT8]}


def test_dict_round_trip_keeps_the_file_format():
    grid = Grid(targets=("tflite",), quant=("int8",), prune=(0.0, 0.3), finetune_epochs=2)
    doc = grid.to_dict()
    assert doc["targets"] == ["tflite"] and doc["quant"] == ["int8"] and doc["prune_method"] == "structured"
    assert all(type(v) is str for v in doc["targets"] + doc["quant"] + [doc["prune_method"]])  # plain JSON/TOML
    assert Grid.from_dict(doc) == grid
    assert grid.uses_structured_pruning and not Grid(prune=(0.0,)).uses_structured_pruning


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"targets": ("coreml",)}, "unknown target 'coreml'"),
    ({"quant": ("int3",)}, "unknown quantization 'int3'"),
    ({"prune_method": "random"}, "unknown prune_method 'random'"),
    ({"prune_method": "none"}, "must be 'structured' or 'unstructured'"),
    ({"prune": (1.0,)}, "below 1"),
    ({"quant": ("int8", "int8")}, "listed twice"),
    ({"targets": ()}, "at least one target"),
])
def test_bad_grids_say_what_is_wrong(kwargs, reason):
    with pytest.raises(RecipeError, match=reason):
        Grid(**kwargs)


def test_unknown_keys_and_versions_are_refused():
    with pytest.raises(RecipeError, match="unknown grid key"):
        Grid.from_dict({"targets": ["onnx"], "colour": "red"})
    with pytest.raises(RecipeError, match="schema_version 9"):
        Grid.from_dict({"schema_version": 9})
