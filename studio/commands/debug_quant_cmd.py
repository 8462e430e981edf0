"""`studio debug-quant RUN/ID [--json] [--top N] [--keep-float K]`: which layers an int8 candidate loses most in,
and the candidate made again with the worst of them in float."""
from __future__ import annotations

import json
import math


def add_parser(sub) -> None:
    p = sub.add_parser("debug-quant", help="per-layer error of an int8 sweep candidate against its float model",
                       description="Runs the candidate's float and int8 models on the sweep's own samples and"
                                   " compares every quantized tensor: SQNR (dB), cosine and relative error, worst"
                                   " first.")
    p.add_argument("candidate", metavar="RUN/ID", help="a candidate of a sweep run, e.g. runs/mnist/onnx-int8-p0.00")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--top", type=_positive, metavar="N", help="list only the N worst layers")
    p.add_argument("--samples", type=_positive, default=64, help="evaluation samples to compare on (default 64)")
    p.add_argument("--keep-float", type=_positive, metavar="K",
                   help="also make the candidate again with its K worst layers in float, measure it and add it to"
                        " RUN's results")
    p.set_defaults(run=run)


def _positive(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of at least 1")
    return int(text)


def run(args) -> int:
    from studio.commands.progressbar import ProgressBar
    from studio.core.base.atomic import json_safe
    from studio.core.sweep.quant_debug import debug_candidate, keep_in_float

    with ProgressBar(enabled=not args.json) as bar:
        debug = debug_candidate(args.candidate, samples=args.samples, report=bar)
        nodes = tuple(r.node for r in debug.layers if r.node)[:args.keep_float or 0]
        added = keep_in_float(args.candidate, nodes, report=bar) if nodes else None
    doc = debug.to_dict(args.top)
    if added is not None:
        doc["added"] = added.to_dict()
    if args.json:
        print(json.dumps(json_safe(doc), indent=2))
        return 0
    print(f"{debug.candidate}: {len(debug.layers)} quantized tensors on {debug.samples} samples, worst first")
    print(f"{'tensor':<28} {'node':<28} {'op':<10} {'SQNR dB':>8} {'cosine':>9} {'rel.err':>9}")
    for r in debug.worst(args.top or len(debug.layers)):
        sqnr = f"{r.sqnr_db:8.2f}" if math.isfinite(r.sqnr_db) else f"{'exact':>8}"
        print(f"{r.tensor:<28} {r.node or '-':<28} {r.op:<10} {sqnr} {r.cosine:9.6f} {r.relative_error:9.5f}")
    if added is not None:
        score = f"accuracy {added.accuracy:.2f}%, " if added.accuracy is not None else ""
        print(f"added {added.id} ({len(added.float_layers)} layer(s) in float): {score}agreement"
              f" {added.agreement:.2f}%, {added.latency_ms_median:.4f} ms")
    return 0
