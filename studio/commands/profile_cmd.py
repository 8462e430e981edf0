"""`studio profile MODEL|RUN/CANDIDATE | --device NAME [--json] [--top N]`: where one run's time goes, per operator
type and node, on this machine or on a device."""
from __future__ import annotations

import json

from studio.core.base.errors import StudioError


def add_parser(sub) -> None:
    from studio.commands.inspect_cmd import add_shape_argument

    p = sub.add_parser("profile", help="time per operator type and per node, from the runtime's own profiler",
                       description="Runs an ONNX model (or a candidate folder RUN/ID) with onnxruntime's profiler, or"
                                   " a TFLite model with LiteRT's (on its CPU accelerator, XNNPACK), at the shapes it"
                                   " is timed at (the run's recorded shapes, --input-shape, or the first sample of"
                                   " --data), and lists the time per operator type and the slowest nodes, next to"
                                   " the measured latency of the same runs. With several --provider values (ONNX),"
                                   " lists the nodes that fell back to a later provider; for TFLite, the operators"
                                   " XNNPACK left to LiteRT's own kernels. With --device, profiles the release the"
                                   " device runs, with its runtime, on the bundle's check set.")
    p.add_argument("model", metavar="MODEL", nargs="?", help="an .onnx or .tflite file, or a sweep candidate RUN/ID")
    p.add_argument("--device", metavar="NAME", help="profile the release this device runs, on the device")
    p.add_argument("--top", type=int, default=20, metavar="N", help="how many nodes to list (default 20)")
    p.add_argument("--runs", type=int, default=20, metavar="N", help="timed runs after 5 warm-up runs (default 20)")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="intra-op threads (default 1)")
    p.add_argument("--data", metavar="D", help="feed the first sample of D (.npz or image folder); default: random")
    p.add_argument("--provider", action="append", metavar="NAME",
                   help="an onnxruntime execution provider, in priority order (repeat; default CPUExecutionProvider)")
    p.add_argument("--no-graph-optimizations", action="store_true",
                   help="run the graph as written (node names as in the file) instead of as onnxruntime optimizes it")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_shape_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from studio.core.base.atomic import json_safe

    p = _on_device(args) if args.device else _here(args)
    if args.json:
        print(json.dumps(json_safe(p.to_dict()), indent=2))
        return 0
    _print(p)
    return 0


def _here(args):
    from studio.commands.progressbar import ProgressBar
    from studio.core.look.profile import ProfileOptions, profile_model
    from studio.core.tensors.shapes import ShapeRequest

    if args.model is None:
        raise StudioError("name a MODEL, or a --device to profile the release it runs")
    options = ProfileOptions(runs=args.runs, top=args.top, threads=args.threads, data=args.data,
                             shapes=ShapeRequest.parse(args.input_shape),
                             providers=tuple(args.provider or ("CPUExecutionProvider",)),
                             optimized=not args.no_graph_optimizations)
    with ProgressBar(enabled=not args.json) as bar:
        return profile_model(args.model, options, report=bar)


def _on_device(args):
    from studio.core.deploy.inventory import get
    from studio.core.look.device_profile import profile_on_device
    from studio.core.look.profile import ProfileOptions

    given = [flag for flag, value in (("MODEL", args.model), ("--data", args.data), ("--input-shape",
                                      args.input_shape), ("--provider", args.provider)) if value]
    if given:
        raise StudioError(f"--device profiles the release the device runs, on its bundle's check set with the device's"
                          f" CPU provider: {', '.join(given)} cannot be given with it")
    options = ProfileOptions(runs=args.runs, top=args.top, threads=args.threads,
                             optimized=not args.no_graph_optimizations)
    return profile_on_device(get(args.device), options)


def _print(p) -> None:
    shapes = ", ".join(f"{name} {list(shape)}" for name, shape in p.inputs)
    where = f" on device {p.device}" if p.device else ""
    print(f"{p.model}: {p.runtime}{where} on {', '.join(p.providers)}, {shapes}"
          f"{' (random inputs)' if p.synthetic else ''}, {p.runs} runs after {p.warmup} warm-up")
    print(f"operators {p.op_ms:.3f} ms per run of {p.latency_ms:.3f} ms measured ({p.coverage:.0%});"
          f" median latency {p.latency_median_ms:.3f} ms")
    print("by operator type:")
    width = max((len(o.op) for o in p.op_types), default=0)
    for o in p.op_types:
        print(f"  {o.op:<{width}} {o.nodes:>4} node{'s' if o.nodes != 1 else ' '} {o.ms:9.3f} ms {o.share:6.1%}")
    print(f"slowest nodes ({len(p.nodes)} of {p.node_count}):")
    width = max((len(n.op) for n in p.nodes), default=0)
    for n in p.nodes:
        print(f"  {n.name[:40]:<40} {n.op:<{width}} {n.ms:9.3f} ms {n.share:6.1%}")
    if len(p.providers) > 1:
        print(f"ran outside {p.providers[0]}: " + (", ".join(f"{n.name} ({n.op}, {n.provider})" for n in p.fallback)
                                                    or "none"))
