"""`--prune-scope` on optimize and sweep: per layer unless told, and it reaches the recipe and the grid."""
import pytest

from studio.cli import build_parser
from studio.commands.optimize_cmd import recipe_from_args
from studio.commands.sweep_cmd import build_grid
from studio.core.recipe.recipe import PruneScope


@pytest.mark.parametrize("extra, scope", [((), PruneScope.LAYER), (("--prune-scope", "global"), PruneScope.GLOBAL)])
def test_optimize_prune_scope_reaches_the_recipe(tmp_path, extra, scope):
    args = build_parser().parse_args(["optimize", "m.onnx", "-o", str(tmp_path), "--prune", "unstructured",
                                      "--prune-ratio", "0.3", *extra])
    recipe = recipe_from_args(args)
    assert recipe.pruning.scope is scope
    recipe.save(tmp_path / "r.toml")
    assert f'scope = "{scope.value}"' in (tmp_path / "r.toml").read_text()


def test_sweep_prune_scope_reaches_every_pruned_candidate(tmp_path):
    args = build_parser().parse_args(["sweep", "m.onnx", "-o", str(tmp_path), "--prune", "0,0.3",
                                      "--prune-method", "unstructured", "--prune-scope", "global"])
    pruned = [c.recipe.pruning for c in build_grid(args).candidates() if c.recipe.pruning.ratio]
    assert pruned and all(p.scope is PruneScope.GLOBAL for p in pruned)


def test_an_unknown_scope_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["optimize", "m.onnx", "-o", "o", "--prune-scope", "per_layer"])
    assert "invalid choice: 'per_layer'" in capsys.readouterr().err
