"""`studio check`, `studio monitor` and `studio history`: is each deployed model still doing what its bundle
promised? (The checks run on the devices; their rows go to the monitor history.)"""
from __future__ import annotations

import csv
import json
import re
import sys
import time
from dataclasses import fields


def _targets(p) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--device", action="append", metavar="NAME", help="a device (repeatable)")
    g.add_argument("--tag", metavar="T", help="every device with this tag")
    p.add_argument("--latency-margin", type=float, default=0.25, metavar="F",
                   help="slower = median more than this fraction over the promise or the first check (0.25)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per check (30)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--json", action="store_true")


def add_parser(sub) -> None:
    c = sub.add_parser("check", help="check the deployed model on devices: fidelity, latency, verdict")
    _targets(c)
    c.set_defaults(run=run_check)
    m = sub.add_parser("monitor", help="check devices on a schedule and print the fleet with its trend")
    _targets(m)
    m.add_argument("--every", default="10m", metavar="INTERVAL", help="time between rounds: 30s, 10m, 1h (10m)")
    m.add_argument("--count", type=int, default=0, metavar="N", help="stop after N rounds (default: never)")
    m.set_defaults(run=run_monitor)
    h = sub.add_parser("history", help="a device's checks from the monitor history")
    h.add_argument("--device", required=True, metavar="NAME")
    fmt = h.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    h.set_defaults(run=run_history)


def _options(args):
    from studio.core.monitor.check import CheckOptions

    return CheckOptions(latency_margin=args.latency_margin, runs=args.runs, concurrency=args.concurrency)


def _devices(args):
    from studio.core.deploy import inventory

    return inventory.select(args.device, args.tag)


def run_check(args) -> int:
    from studio.core.monitor.check import check_devices

    results = check_devices(_devices(args), _options(args))
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        for r in results:
            print(_line(r))
    return 0 if all(r.ok for r in results) else 1


def _line(r, previous=None) -> str:
    lat = f"{r.latency_ms_median:.3g} ms" if r.latency_ms_median is not None else "-"
    trend = ""
    if previous is not None and previous.latency_ms_median and r.latency_ms_median is not None:
        change = (r.latency_ms_median / previous.latency_ms_median - 1) * 100
        trend = f" ({change:+.0f}% since {previous.checked_at}, was {previous.verdict.value})"
    return f"{r.device:<16} {r.release or '-':<28} {r.verdict.value:<11} {lat:>10}{trend}  {r.reason}"


def parse_interval(text: str) -> float:
    from studio.core.base.errors import StudioError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise StudioError(f"--every '{text}' must be a positive time like 30s, 10m or 1h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def run_monitor(args) -> int:
    from studio.core.monitor.check import check_devices
    from studio.core.monitor.history import History

    interval = parse_interval(args.every)
    options, devices, rounds, bad = _options(args), _devices(args), 0, False
    with History() as history:
        while True:
            results = check_devices(devices, options, history=history)
            bad = not all(r.ok for r in results)
            if args.json:
                print(json.dumps([r.to_json() for r in results]), flush=True)
            else:
                print(f"{'DEVICE':<16} {'RELEASE':<28} {'VERDICT':<11} {'MEDIAN':>10}  REASON")
                for r in results:
                    print(_line(r, history.previous(r.device)), flush=True)
            rounds += 1
            if args.count and rounds >= args.count:
                return 1 if bad else 0
            time.sleep(interval)


def run_history(args) -> int:
    from studio.core.monitor.history import History
    from studio.core.monitor.records import CheckResult

    with History() as history:
        rows = [r.to_json() for r in history.rows(args.device)]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=[f.name for f in fields(CheckResult)])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()})
    else:
        for row in rows:
            r = CheckResult.from_json(row)
            print(f"{r.checked_at}  {_line(r)}")
        if not rows:
            print(f"no checks of '{args.device}' yet (run `studio check --device {args.device}`)")
    return 0
