"""`studio optimize MODEL ... -o OUT`: convert, prune and quantize one model into OUT/model.{onnx,tflite}."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    from studio.commands.inspect_cmd import add_model_options, add_shape_argument
    from studio.commands.scoring_args import add_scoring_arguments

    p = sub.add_parser("optimize", help="convert, prune and quantize a model into an ONNX or TFLite file",
                       description="Writes OUT/model.onnx or OUT/model.tflite and OUT/report.json.")
    p.add_argument("model")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--recipe", help="recipe TOML (the options below override what it says)")
    p.add_argument("--target", choices=["onnx", "tflite"])
    p.add_argument("--quant", choices=["none", "dynamic", "int8", "fp16"])
    p.add_argument("--calib-method", choices=["minmax", "entropy", "percentile"])
    p.add_argument("--per-channel", action=argparse_bool(), default=None, help="per-channel weights (default on)")
    p.add_argument("--io", choices=["int8", "float"], help="TFLite int8 model inputs/outputs (default int8)")
    p.add_argument("--calib", metavar="DATA", help="calibration data: .npz with x, or an image folder")
    p.add_argument("--prune", choices=["none", "structured", "unstructured"])
    p.add_argument("--prune-ratio", type=float, metavar="R", help="fraction of channels (or weights) to remove")
    p.add_argument("--prune-scope", choices=["layer", "global"],
                   help="spread the ratio over each layer (default) or rank weights across all layers together")
    p.add_argument("--finetune", metavar="DATA", help="labelled training data for recovery after pruning")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (default 2 when --finetune is given)")
    p.add_argument("--lr", type=float, help="fine-tuning learning rate (default 1e-3)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    p.add_argument("--threads", type=int)
    add_model_options(p)
    add_shape_argument(p)
    add_scoring_arguments(p)
    p.add_argument("--allow-degraded", action="store_true", help="keep a result below the quality gate")
    p.add_argument("--save-recipe", metavar="R.toml", help="also write the effective recipe here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def recipe_from_args(args):
    from studio.core.recipe.recipe import Recipe

    recipe = Recipe.load(args.recipe) if args.recipe else Recipe()
    doc = recipe.to_dict()
    if args.target:
        doc["target"] = args.target
    quant = doc["quantization"]
    for key, value in (("mode", args.quant), ("calibration", args.calib_method), ("per_channel", args.per_channel),
                       ("io", args.io)):
        if value is not None:
            quant[key] = value
    pruning = doc["pruning"]
    if args.prune:
        pruning["method"] = args.prune
    if args.prune_ratio is not None:
        pruning["ratio"] = args.prune_ratio
    if args.prune_scope:
        pruning["scope"] = args.prune_scope
    if args.finetune:
        pruning["finetune_epochs"] = args.epochs if args.epochs is not None else (pruning.get("finetune_epochs") or 2)
    elif args.epochs is not None:
        pruning["finetune_epochs"] = args.epochs
    if args.lr is not None:
        pruning["finetune_lr"] = args.lr
    if args.opset is not None:
        doc["runtime"]["opset"] = args.opset
    if args.threads is not None:
        doc["runtime"]["threads"] = args.threads
    return Recipe.from_dict(doc, args.recipe)


def run(args) -> int:
    from studio.commands.inspect_cmd import arch_spec, shapes_of
    from studio.commands.progressbar import ProgressBar
    from studio.commands.scoring_args import scoring_of
    from studio.core.optimize.optimize import optimize

    recipe = recipe_from_args(args)
    if args.save_recipe:
        recipe.save(args.save_recipe)
    with ProgressBar(enabled=not args.json) as bar:
        doc = optimize(args.model, recipe, args.out, calib=args.calib, finetune=args.finetune, arch=arch_spec(args),
                       trust_pickle=args.trust_pickle, shapes=shapes_of(args), scoring=scoring_of(args),
                       allow_degraded=args.allow_degraded, report=bar)
    if args.json:
        from studio.core.base.atomic import json_safe

        print(json.dumps(json_safe(doc), indent=2))
        return 0
    print_summary(doc, args.out)
    return 0


def _db(value) -> str:
    return "identical" if value is None else f"{value:.1f} dB"


def print_summary(doc: dict, out: str) -> None:
    from studio.core.inspect.modelinfo import human_bytes, human_count

    src, dst = doc["source"], doc["output"]
    print(f"{doc['conversion']['route']}: {out}/{dst['path']}  ({doc['time_s']:.1f} s)")
    print(f"  size        {human_bytes(src['size_bytes'])} -> {human_bytes(dst['size_bytes'])}"
          f"  (compressed {human_bytes(src['compressed_size_bytes'] or 0)}"
          f" -> {human_bytes(dst['compressed_size_bytes'])})")
    print(f"  parameters  {human_count(doc['params_before'])} -> {human_count(doc['params_after'])}")
    print(f"  MACs        {human_count(doc['macs_before'])} -> {human_count(dst['macs'])}")
    check = doc["conversion"]["check"] or {}
    if "relative_error" in check:
        print(f"  conversion  max abs error {check['max_abs_error']:.3g}, relative {check['relative_error']:.3g}"
              f" (tolerance {check['tolerance']:g}): passed")
    for key, label in (("pruning_effect", "pruning"), ("quantization_effect", "quantization")):
        eff = doc.get(key)
        if eff:
            agree = f", top-1 agreement {eff['top1_agreement']:.1f}%" if "top1_agreement" in eff else ""
            print(f"  {label:<11} output cosine {eff['cosine']:.4f}, SQNR {_db(eff['sqnr_db'])}{agree}")
    fidelity = doc.get("fidelity") or {}
    for f in fidelity.get("outputs", []):
        agree = f", top-1 agreement {f['top1_agreement']:.1f}%" if f.get("top1_agreement") is not None else ""
        mark = "  (scores the result)" if f["name"] == fidelity.get("scoring_output") else ""
        print(f"  vs source   {f['name']}: cosine {f['cosine']:.4f}, SQNR {_db(f['sqnr_db'])}, max abs error"
              f" {f['max_abs_error']:.3g}{agree}{mark}")
    if fidelity.get("degraded"):
        print(f"  DEGRADED    {fidelity['degraded']} (kept because of --allow-degraded)")
    for n in doc["notes"]:
        print(f"  note: {n}")
    for w in doc["warnings"]:
        print(f"  warning: {w}")
