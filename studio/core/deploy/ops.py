"""Device operations besides push: trust, probe, status, rollback, on-device latency (bench) and the monitor's
check."""
from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from studio.core.base.errors import StudioError
from studio.core.bundle.bundle import verify_bundle
from studio.core.deploy import known_hosts
from studio.core.deploy.inventory import Device, DeviceError
from studio.core.deploy.transport import DeviceTransport, _server_key, connect, drive, open_session


def fetch_fingerprint(device: Device) -> tuple[str, object]:
    """The SHA256 fingerprint the device presents now (no login: only the host key exchange)."""
    async def go():
        tunnel = None
        if device.jump:
            from studio.core.deploy.inventory import get
            from studio.core.deploy.transport import SSHTransport

            tunnel = (await SSHTransport.connect(get(device.jump))).conn
        return await _server_key(device, tunnel)
    if device.kind == "local":
        raise DeviceError(f"{device.name} is a local folder: there is no host key to trust")
    key = drive(go())
    return known_hosts.fingerprint(key), key


def trust(device: Device, key) -> None:
    known_hosts.trust(device.host, device.port, key)


async def _with_device(device: Device, work, lock: bool = False):
    """Run `work(transport, agent)` with an agent session (locked for changes, unlocked for reads)."""
    t = await connect(device)
    agent = None
    try:
        agent = await open_session(t, lock=lock)
        if lock:
            await agent.call("recover")
        return await work(t, agent)
    finally:
        if agent is not None:
            await agent.close()
        await t.close()


def probe(device: Device) -> dict:
    return drive(_with_device(device, lambda t, a: a.call("probe")))


def status(devices: list[Device]) -> list[dict]:
    async def one(d: Device) -> dict:
        try:
            doc = await _with_device(d, lambda t, a: a.call("status"))
            return {"device": d.name, "reachable": True, **{k: doc[k] for k in ("current", "previous", "releases")},
                    "interrupted": doc.get("journal"), "busy": doc.get("busy", False),
                    "damaged": doc.get("damaged", {})}
        except StudioError as exc:
            return {"device": d.name, "reachable": False, "error": exc.message}

    async def all_():
        return await asyncio.gather(*(one(d) for d in devices))
    return list(drive(all_()))


def check(device: Device, runs: int = 30, threads: int = 1, timeout: float = 300.0) -> dict:
    """The monitor's check of the release the device runs (nothing is uploaded but Studio's agent and runner):
    the agent's answer, with the runner's result under "result"."""
    async def work(t, agent):
        return await agent.call("check", runs, threads, timeout, timeout=timeout + 30)
    return drive(_with_device(device, work))


def profile(device: Device, runs: int, warmup: int, threads: int, as_written: bool, timeout: float = 300.0) -> dict:
    """The release the device runs, profiled by Studio's profiler with the device's onnxruntime on its check set:
    the agent's answer, with the profiler's result (the timed runs' events) under "result"."""
    async def work(t, agent):
        return await agent.call("profile", runs, warmup, threads, int(as_written), timeout, timeout=timeout + 30)
    return drive(_with_device(device, work))


def rollback(device: Device) -> dict:
    return drive(_with_device(device, lambda t, a: a.call("rollback"), lock=True))


async def _bench(t: DeviceTransport, bundle: Path, runs: int, threads: int) -> dict:
    manifest = verify_bundle(bundle).manifest
    base = f"{t.device.dir}/.studio/bench/{manifest['id']}"
    await t.put(bundle, f"{base}.zip", 0, lambda n: None)
    script = ("import json,os,subprocess,sys,zipfile,shutil\n"
              "zip_path, folder = sys.argv[1], sys.argv[2]\n"
              "shutil.rmtree(folder, ignore_errors=True); os.makedirs(folder)\n"
              "with zipfile.ZipFile(zip_path) as zf:\n"
              "    for n in zf.namelist():\n"
              "        assert '/' not in n and not n.startswith('.')\n"
              "        open(os.path.join(folder, n), 'wb').write(zf.read(n))\n"
              "r = subprocess.run([sys.executable, os.path.join(folder, 'runner.py'), '--runs', sys.argv[3],"
              " '--threads', sys.argv[4]], stdout=subprocess.PIPE, cwd=folder)\n"
              "shutil.rmtree(folder, ignore_errors=True); os.unlink(zip_path)\n"
              "sys.stdout.write(r.stdout.decode()); sys.exit(r.returncode)\n")
    import shlex

    argv = [*shlex.split(t.device.python), "-c", script, f"{base}.zip", base, str(runs), str(threads)]
    rc, out, err = await t.run(argv, timeout=300)
    try:
        doc = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DeviceError(f"the runner printed no result on {t.device.name} "
                          f"({(err.strip().splitlines() or ['exit code ' + str(rc)])[-1]})") from None
    if not doc.get("ok"):
        raise DeviceError(f"the model does not run on {t.device.name}: {doc.get('error')}")
    lat = doc["latency_ms"]
    return {"device": t.device.name, "median_ms": lat["median"], "p90_ms": lat["p90"], "runs": lat["runs"],
            "threads": threads, "runtime": doc["runtime"], "runtime_version": doc["runtime_version"],
            "bundle": manifest["id"]}


def bench(device: Device, bundle: str | Path, runs: int = 50, threads: int = 1) -> dict:
    """Latency of a bundle's model measured on the device with the device's runtime (nothing is installed)."""
    return drive(_with_device(device, lambda t, a: _bench(t, Path(bundle), runs, threads)))


def bench_model(device: Device, model: Path, runs: int = 50, threads: int = 1) -> dict:
    """Bundle a model file on the fly and bench it on the device (the sweep's --device), at the input shapes its
    sweep resolved when it is a sweep candidate."""
    from studio.core.bundle.bundle import ExportSource, build_bundle, bundle_check_set, resolve_source
    from studio.core.sweep.run_folder import RunFolder

    model = Path(model)
    src = resolve_source(model.parent) if RunFolder.of_candidate(model.parent) else ExportSource(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.bundle.zip"
        build_bundle(src, path, name="bench", version="0", allow_degraded=True,
                     checks=bundle_check_set(src, count=1))  # only latency is measured: one sample is enough
        return bench(device, path, runs, threads)
