"""`studio devices ...`, `studio push`, `studio rollback`, `studio status` and `studio bench`."""
from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    _add_devices(sub)
    _add_push(sub)
    _add_rollback_status_bench(sub)


def _add_devices(sub) -> None:
    d = sub.add_parser("devices", help="the device inventory: add, list, remove, probe, trust")
    dsub = d.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    _add_devices_add(dsub)
    ls = dsub.add_parser("list", help="list devices")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=run_list)
    rm = dsub.add_parser("remove", help="remove a device")
    rm.add_argument("name")
    rm.set_defaults(run=run_remove)
    pr = dsub.add_parser("probe", help="arch, OS, Python, runtimes, free disk, current and previous bundle")
    pr.add_argument("name")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(run=run_probe)
    tr = dsub.add_parser("trust", help="show the device's host key fingerprint and trust it")
    tr.add_argument("name")
    tr.add_argument("--fingerprint", metavar="SHA256:...", help="trust only if the device presents this key")
    tr.set_defaults(run=run_trust)


def _add_devices_add(dsub) -> None:
    add = dsub.add_parser("add", help="add a device")
    add.add_argument("name")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="SSH host name or address")
    where.add_argument("--local", metavar="DIR", help="a folder on this machine acting as a device (demos)")
    add.add_argument("--port", type=int, default=22)
    add.add_argument("--user", default="root")
    add.add_argument("--key", help="private key file (default: the ssh-agent)")
    add.add_argument("--dir", default="/opt/studio", help="install dir on the device (default /opt/studio)")
    add.add_argument("--tag", action="append", default=[], help="a tag for fleet pushes (repeatable)")
    add.add_argument("--jump", metavar="DEVICE", help="reach it through this device")
    add.add_argument("--python", default=None, help="Python on the device (default python3)")
    add.add_argument("--keep", type=int, default=3, help="releases kept on the device (default 3)")
    add.add_argument("--replace", action="store_true", help="replace a device of the same name")
    add.set_defaults(run=run_add)


def _add_push(sub) -> None:
    p = sub.add_parser("push", help="install a bundle on devices (verified, atomic, with rollback on failure)")
    p.add_argument("bundle")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--device", metavar="NAME[,NAME...]")
    target.add_argument("--tag", metavar="T")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--canary", type=int, default=0, metavar="K", help="push to the first K devices first")
    p.add_argument("--max-fail", type=float, metavar="PCT", help="stop when more than PCT%% of devices failed")
    p.add_argument("--no-smoke-test", action="store_true", help="do not run the model on the device before switching")
    p.add_argument("--pubkey", metavar="K.pub", help="require a bundle signature by this key")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_push)


def _add_rollback_status_bench(sub) -> None:
    rb = sub.add_parser("rollback", help="switch a device back to its previous release")
    rb.add_argument("--device", required=True, metavar="NAME")
    rb.set_defaults(run=run_rollback)

    st = sub.add_parser("status", help="what each device runs")
    st.add_argument("--device", metavar="NAME[,NAME...]")
    st.add_argument("--json", action="store_true")
    st.set_defaults(run=run_status)

    b = sub.add_parser("bench", help="measure a bundle's latency on a device (installs nothing)")
    b.add_argument("bundle")
    b.add_argument("--device", required=True, metavar="NAME")
    b.add_argument("--runs", type=int, default=50)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--json", action="store_true")
    b.set_defaults(run=run_bench)


def run_add(args) -> int:
    import os
    import sys as _sys

    from studio.core.deploy import inventory

    if args.local:
        here = "python3" if getattr(_sys, "frozen", False) else _sys.executable  # the flasher binary is no Python
        device = inventory.Device(name=args.name, kind="local", dir=os.path.abspath(args.local), tags=tuple(args.tag),
                                  python=args.python or here, keep=args.keep)
    else:
        device = inventory.Device(name=args.name, host=args.host, port=args.port, user=args.user,
                                  key=inventory.key_file(args.key), dir=args.dir, tags=tuple(args.tag), jump=args.jump,
                                  python=args.python or "python3", keep=args.keep)
    inventory.add(device, replace=args.replace)
    print(f"added {device.name} ({device.address})")
    if device.kind == "ssh":
        print(f"next: check its host key with `studio devices trust {device.name}`")
    return 0


def run_list(args) -> int:
    from studio.core.deploy import inventory, known_hosts

    devices = inventory.load()
    if args.json:
        print(json.dumps([{"name": n, **d.to_dict()} for n, d in sorted(devices.items())], indent=2))
        return 0
    if not devices:
        print("no devices yet: add one with `studio devices add NAME --host HOST`")
        return 0
    for name, d in sorted(devices.items()):
        trusted = "" if d.kind == "local" else ("  trusted" if known_hosts.lookup(d.host, d.port) else "  NOT TRUSTED")
        tags = f"  tags: {', '.join(d.tags)}" if d.tags else ""
        print(f"{name:<16} {d.address:<32} dir {d.dir}{tags}{trusted}")
    return 0


def run_remove(args) -> int:
    from studio.core.deploy import inventory

    inventory.remove(args.name)
    print(f"removed {args.name}")
    return 0


def run_probe(args) -> int:
    from studio.core.deploy import inventory, ops

    doc = ops.probe(inventory.get(args.name))
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    runtimes = ", ".join(f"{k} {v}" for k, v in doc["runtimes"].items()) or "none found"
    cur = doc["current"]
    prev = doc["previous"]
    print(f"{args.name}: {doc['arch']}, {doc['os']}, Python {doc['python']}")
    print(f"  runtimes   {runtimes}")
    print(f"  free disk  {doc['free_bytes'] / 1e6:.1f} MB in {doc['dir']}")
    print(f"  current    {cur['name']} {cur['version']} ({cur['id']})" if cur else "  current    none")
    print(f"  previous   {prev['name']} {prev['version']} ({prev['id']})" if prev else "  previous   none")
    return 0


def run_trust(args) -> int:
    from studio.core.deploy import inventory, known_hosts, ops
    from studio.core.deploy.inventory import DeviceError

    device = inventory.get(args.name)
    fingerprint, key = ops.fetch_fingerprint(device)
    old = known_hosts.trusted_fingerprint(device.host, device.port)
    print(f"{device.name} ({device.host}:{device.port}) presents host key {fingerprint}")
    if old:
        print(f"  Studio trusted {old} before")
    if args.fingerprint:
        if args.fingerprint.strip() != fingerprint:
            raise DeviceError(f"the device presents {fingerprint}, not {args.fingerprint}: not trusted")
    elif sys.stdin.isatty():
        answer = input("Compare it with the key shown on the device's console. Trust it? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not trusted")
            return 1
    else:
        raise DeviceError("no terminal to ask on: pass --fingerprint SHA256:... to trust non-interactively")
    ops.trust(device, key)
    print(f"trusted {device.name}")
    return 0


def _devices(args):
    from studio.core.deploy import inventory

    if getattr(args, "device", None):
        return inventory.select(names=[n.strip() for n in args.device.split(",") if n.strip()])
    return inventory.select(tag=args.tag)


def run_push(args) -> int:
    from studio.commands.progressbar import ProgressBar
    from studio.core.deploy import fleet

    devices = _devices(args)
    fractions: dict[str, float] = {}
    with ProgressBar(enabled=not args.json) as bar:
        def progress(name, fraction, message):
            fractions[name] = fraction
            bar(sum(fractions.values()) / len(devices), f"{name}: {message}")
        result = fleet.push(args.bundle, devices, concurrency=args.concurrency, canary=args.canary,
                            max_fail=args.max_fail, smoke=not args.no_smoke_test, pubkey=args.pubkey,
                            progress=progress)
    if args.json:
        print(json.dumps({"bundle": result.bundle, "ok": result.ok, "results": [r.to_dict() for r in result.results]},
                         indent=2))
    else:
        width = max(len(r.device) for r in result.results)
        for r in result.results:
            print(f"{r.device:<{width}}  {r.status:<9}  {r.message}")
            if r.detail and not r.ok:
                print(f"{'':<{width}}  {'':<9}  ({r.detail})")
        counts = ", ".join(f"{n} {s}" for s, n in result.counts().items())
        print(f"{result.bundle}: {counts}")
    return 0 if result.ok else 1


def run_rollback(args) -> int:
    from studio.core.deploy import inventory, ops

    doc = ops.rollback(inventory.get(args.device))
    print(f"{args.device}: rolled back; now runs {doc['current']} (was {doc['previous']})")
    return 0


def run_status(args) -> int:
    from studio.core.deploy import inventory, ops

    devices = _devices(args) if args.device else sorted(inventory.load().values(), key=lambda d: d.name)
    rows = ops.status(devices)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0 if all(r["reachable"] for r in rows) else 1
    for r in rows:
        if not r["reachable"]:
            print(f"{r['device']:<16} unreachable: {r['error']}")
            continue
        cur, prev = r["current"], r["previous"]
        now = f"{cur['name']} {cur['version']}" if cur else "nothing installed"
        before = f"  (previous: {prev['name']} {prev['version']})" if prev else ""
        journal = r.get("interrupted")
        warn = ("  a push is in progress" if r.get("busy") else
                f"  an interrupted push of {journal.get('bundle')} is left (the next push resolves it)") if journal \
            else ""
        damaged = "".join(f"  DAMAGED release {rid}: {why}" for rid, why in sorted(r.get("damaged", {}).items()))
        print(f"{r['device']:<16} runs {now}{before}{warn}{damaged}")
    return 0 if all(r["reachable"] for r in rows) else 1


def run_bench(args) -> int:
    from studio.core.deploy import inventory, ops

    doc = ops.bench(inventory.get(args.device), args.bundle, runs=args.runs, threads=args.threads)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{args.device}: median {doc['median_ms']:.3f} ms, p90 {doc['p90_ms']:.3f} ms over {doc['runs']} runs"
              f" ({doc['runtime']} {doc['runtime_version']}, {doc['threads']} thread(s))")
    return 0
