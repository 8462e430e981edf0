"""`studio diff A B [--data D] [--json]`: what changed between two models, and where B's numbers drift from A's."""
from __future__ import annotations

import json
import math


def add_parser(sub) -> None:
    from studio.commands.inspect_cmd import add_shape_argument

    p = sub.add_parser("diff", help="compare two models: operators added, removed, changed; per-tensor error",
                       description="Matches the operators of A and B by name and position (ONNX or TFLite, or a"
                                   " candidate folder RUN/ID), lists what changed (Q/DQ inserted, layers fused or"
                                   " pruned, channels, dtypes), then runs both on the samples and compares every"
                                   " matched tensor: SQNR (dB) and cosine, worst first.")
    p.add_argument("a", metavar="A", help="the reference model (e.g. the source)")
    p.add_argument("b", metavar="B", help="the model to compare with it (e.g. a candidate)")
    p.add_argument("--data", metavar="D", help="samples to compare on (.npz or image folder); default: random inputs")
    p.add_argument("--samples", type=int, default=32, metavar="N", help="how many samples (default 32)")
    p.add_argument("--structure-only", action="store_true", help="skip running the models")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_shape_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from studio.commands.progressbar import ProgressBar
    from studio.core.base.atomic import json_safe
    from studio.core.look.diff import DiffOptions, diff_models
    from studio.core.look.match import Change
    from studio.core.tensors.shapes import ShapeRequest

    options = DiffOptions(args.data, max(1, args.samples), ShapeRequest.parse(args.input_shape),
                          not args.structure_only)
    with ProgressBar(enabled=not args.json) as bar:
        d = diff_models(args.a, args.b, options, report=bar)
    if args.json:
        print(json.dumps(json_safe(d.to_dict()), indent=2))
        return 0
    counts = d.counts()
    print(f"{d.a} -> {d.b}: " + ", ".join(f"{n} {c.value.replace('_', ' ')}" for c in Change
                                          if c != Change.SAME and (n := counts[c.value])) or "no structural change")
    for o in d.ops:
        if o.change not in (Change.SAME, Change.INSERTED_QDQ):
            extra = f" channels {o.channels[0]} -> {o.channels[1]}" if o.channels else ""
            print(f"  {o.change.value:<8} {o.op:<18} {o.name}{extra}" + "".join(f"\n{'':12}{t}" for t in o.details))
    if d.inserted():
        print("  inserted " + ", ".join(f"{n} {op}" for op, n in d.inserted().items()))
    if d.tensors:
        where = "random inputs" if d.synthetic else "the samples"
        print(f"per tensor on {d.sample_count} of {where}, worst first:")
        for t in d.tensors[:20]:
            sqnr = f"{t.sqnr_db:8.2f}" if math.isfinite(t.sqnr_db) else f"{'exact':>8}"
            print(f"  {t.node[:40]:<40} {t.op:<16} SQNR {sqnr} dB  cosine {t.cosine:.6f}")
    return 0
