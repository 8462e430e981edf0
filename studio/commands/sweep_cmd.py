"""`studio sweep MODEL --data D ... -o RUN`: measure many candidate recipes and show the real trade-offs."""
from __future__ import annotations

import json
import re
import signal
import sys
import threading


def add_parser(sub) -> None:
    from studio.commands.inspect_cmd import add_model_options, add_shape_argument
    from studio.commands.scoring_args import add_scoring_arguments

    p = sub.add_parser("sweep", help="measure accuracy, latency and size of many candidate recipes",
                       description="Writes RUN/results.json, RUN/results.csv and RUN/tradeoff.png. Running it again"
                                   " with the same -o resumes without redoing finished candidates.")
    p.add_argument("model")
    p.add_argument("--data", help="evaluation data: .npz with x (and y), or an image folder")
    p.add_argument("-o", "--out", required=True, metavar="RUN")
    p.add_argument("--grid", metavar="G.toml", help="grid file (the options below override it)")
    p.add_argument("--prune", type=_floats, help="pruning ratios, e.g. 0,0.25,0.5")
    p.add_argument("--prune-method", choices=["structured", "unstructured"])
    p.add_argument("--prune-scope", choices=["layer", "global"],
                   help="spread the pruning ratio over each layer (default) or rank weights across all layers")
    p.add_argument("--quant", type=_words, help="quantization modes, e.g. none,dynamic,int8,fp16")
    p.add_argument("--target", type=_words, help="targets, e.g. onnx,tflite")
    p.add_argument("--max-drop", type=float, metavar="PTS", help="accuracy-aware mode: keep sensitive layers in"
                                                                " float until int8 loses at most PTS points")
    p.add_argument("--budget", type=parse_duration, metavar="15m", help="time budget (s, m or h)")
    p.add_argument("--device", metavar="NAME", help="also measure latency on this device (NAME,NAME,...: on each"
                                                    " free one of these, one candidate at a time per device)")
    p.add_argument("--device-tag", metavar="T", help="also measure latency on the devices tagged T (a pool)")
    p.add_argument("--cluster", metavar="ADDRESS", help="build and evaluate the candidates as tasks on this Ray"
                                                        " cluster (its head's host:port, or ray://host:port)")
    p.add_argument("--latency-on", choices=["local", "cluster"], default="local",
                   help="with --cluster: where candidates are timed (default: here, each one alone)")
    p.add_argument("--workers", type=int, help="candidates at once (default 2; with --cluster: the cluster's CPUs)")
    p.add_argument("--limit", type=int, default=1000, help="evaluation samples (default 1000)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads for latency (default 1)")
    p.add_argument("--latency-rounds", type=int, default=5, metavar="N",
                   help="time each candidate in N rounds and report the median of their medians (default 5)")
    p.add_argument("--sensitivity", action="store_true", help="also measure per-layer sensitivity")
    p.add_argument("--finetune", metavar="DATA", help="training data for recovery after structured pruning")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (default 2 with --finetune)")
    add_model_options(p)
    add_shape_argument(p)
    add_scoring_arguments(p)
    p.add_argument("--json", action="store_true", help="stream one JSON line per finished candidate")
    p.set_defaults(run=run)


def _floats(text: str) -> tuple[float, ...]:
    import argparse

    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of numbers like 0,0.25,0.5") from None


def _words(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_duration(text: str) -> float:
    import argparse

    m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not m or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration like 90s, 15m or 1h30m")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def build_grid(args):
    import dataclasses

    from studio.core.recipe.grid import Grid

    grid = Grid.load(args.grid) if args.grid else Grid()
    changes = {}
    if args.prune is not None:
        changes["prune"] = args.prune
    if args.prune_method:
        changes["prune_method"] = args.prune_method
    if args.prune_scope:
        changes["prune_scope"] = args.prune_scope
    if args.quant:
        changes["quant"] = args.quant
    if args.target:
        changes["targets"] = args.target
    if args.finetune:
        changes["finetune_epochs"] = args.epochs if args.epochs is not None else (grid.finetune_epochs or 2)
    return dataclasses.replace(grid, **changes) if changes else grid


def run(args) -> int:
    from studio.commands.inspect_cmd import arch_spec, shapes_of
    from studio.commands.progressbar import ProgressBar
    from studio.commands.scoring_args import scoring_of
    from studio.core.base.atomic import json_safe
    from studio.core.base.errors import Cancelled
    from studio.core.base.progress import CancelToken
    from studio.core.sweep.records import CandidateFinished
    from studio.core.sweep.sweep import SweepOptions, run_sweep

    grid = build_grid(args)
    cluster = None
    if args.cluster:
        from studio.core.sweep.executor import ClusterOptions

        cluster = ClusterOptions(args.cluster, args.latency_on)
    elif args.latency_on != "local":
        print("studio: --latency-on cluster needs --cluster ADDRESS", file=sys.stderr)
        return 1
    options = SweepOptions(workers=args.workers if args.workers is not None else (0 if cluster else 2),
                           cluster=cluster, budget_s=args.budget, max_drop=args.max_drop, limit=args.limit,
                           threads=args.threads, latency_rounds=args.latency_rounds, sensitivity=args.sensitivity,
                           arch=arch_spec(args), trust_pickle=args.trust_pickle, shapes=shapes_of(args),
                           finetune=args.finetune, scoring=scoring_of(args), trust_code=args.trust_code,
                           device=args.device)
    device_bench = None
    if args.device or args.device_tag:
        from studio.core.deploy.bench import sweep_bench

        device_bench = sweep_bench(args.device, threads=args.threads, tag=args.device_tag)
    token = CancelToken()
    lock = threading.Lock()

    def on_event(event):
        if args.json and isinstance(event, CandidateFinished):
            with lock:
                print(json.dumps(json_safe(event.candidate.to_dict())), flush=True)

    previous = signal.signal(signal.SIGINT, lambda *a: token.cancel())  # finish cleanly, keep the journal
    try:
        with ProgressBar(enabled=not args.json) as bar:
            doc = run_sweep(args.model, grid, args.data, args.out, options=options, report=bar, cancel=token,
                            on_event=on_event, device_bench=device_bench)
    except Cancelled as exc:
        print(f"studio: {exc.one_line()}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    if not args.json:
        print_table(doc, args.out)
    return 0


def print_table(doc: dict, out: str) -> None:
    from studio.core.inspect.modelinfo import human_bytes
    from studio.core.measure.latency import LatencyOptions
    from studio.core.sweep.records import CandidateResult
    from studio.core.sweep.run_folder import RunFolder

    rows = [CandidateResult.from_dict(c) for c in doc["candidates"]]
    device = any(c.device_latency_ms_median is not None for c in rows)
    head = f"{'candidate':<22} {'status':<8} {'score':>8} {'ms p50':>8} {'ms p90':>8}" + \
           (f" {'device ms':>9}" if device else "") + f" {'size':>9}  pareto"
    print(head)
    print("-" * len(head))
    for c in rows:
        if c.latency_ms_median is None:
            print(f"{c.id:<22} {c.status!s:<8} {c.error}")
            continue
        score = f"{c.score:.4g}" if c.score is not None else "-"
        p50 = ("~" if c.noisy else "") + f"{c.latency_ms_median:.4f}"
        dev = f" {c.device_latency_ms_median:>9.3f}" if device and c.device_latency_ms_median else \
            (f" {'-':>9}" if device else "")
        mark = ("*" if c.pareto else "") + ("  best" if c.id == doc["best"] else "")
        print(f"{c.id:<22} {c.status!s:<8} {score:>8} {p50:>8}"
              f" {c.latency_ms_p90:>8.4f}{dev} {human_bytes(c.size_bytes or 0):>9}  {mark}")
        if not c.ok:
            print(f"{'':<22} {c.error}")
    ref = doc["reference"].get("accuracy")
    print(f"score: {doc['metric']} on {doc['data']['samples']} samples"
          + (f"; original model: {ref:.1f}%" if ref is not None else ""))
    if any(c.noisy for c in rows):
        print(f"~ noisy latency: its timing rounds still differed by more than {LatencyOptions.max_spread:.0%}"
              " when timed again")
    note = (doc.get("recommendation") or {}).get("note")
    if note:
        print(note)
    if doc["skipped"]:
        print(f"not run (time budget): {', '.join(doc['skipped'])}; run again with the same -o to continue")
    run = RunFolder(out)
    print(f"results in {run.results}, {run.results_csv} and {run.plot}")
