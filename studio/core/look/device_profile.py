"""`studio profile --device NAME`: the per-operator profile of the release a device runs, taken there by the
device's runtime (onnxruntime, or LiteRT for TFLite) on the bundle's check set (through the agent) and read into the
same report as on this machine."""
from __future__ import annotations

from typing import Any

from studio.core.deploy import ops
from studio.core.deploy.inventory import Device, DeviceError
from studio.core.look.ort_trace import ProfileError, per_run_kernels
from studio.core.look.profile import (
    ProfileOptions,
    ProfileReport,
    Ran,
    build_report,
    refuse_onnx_options,
    tflite_report,
)

NO_RELEASE = "no release is installed on this device"  # the agent's words


def profile_on_device(device: Device, options: ProfileOptions | None = None) -> ProfileReport:
    """Profile the model of the release `device` runs now (DIR/current). Only `runs`, `warmup`, `threads`, `top` and
    `optimized` of the options apply: the inputs are the bundle's check set, the provider the device's CPU."""
    options = options or ProfileOptions()
    try:
        doc = ops.profile(device, options.runs, options.warmup, options.threads, not options.optimized)
    except DeviceError as exc:
        if exc.message == NO_RELEASE:
            raise ProfileError(f"{device.name} runs no release: push a bundle to it first (`studio push BUNDLE"
                               f" --device {device.name}`)") from None
        raise ProfileError(f"{exc.one_line()}: check that {device.name} is on and reachable (`studio devices probe"
                           f" {device.name}`)") from None
    where = f"{device.name}:{device.dir}/releases/{doc['release']['id']}"
    result = doc["result"]
    if not result.get("ok"):
        raise ProfileError(f"the profile failed on the device: {result.get('error')}", where)
    if result.get("format") == "tflite":
        refuse_onnx_options(options, where)
        return tflite_report(result, f"{where}/{result['model']}", bool(result["synthetic"]), options, device.name)
    return build_report(_ran(device, where, result), _per_run(result, options.runs, where), options)


def _ran(device: Device, where: str, result: dict[str, Any]) -> Ran:
    return Ran(f"{where}/{result['model']}", f"onnxruntime {result['runtime_version']}", tuple(result["providers"]),
               tuple((str(name), tuple(int(d) for d in shape)) for name, shape in result["inputs"]),
               bool(result["synthetic"]), tuple(float(t) for t in result["times_ms"]), device.name)


def _per_run(result: dict[str, Any], runs: int, where: str):
    """The device's compact events (profiler.compact) as trace events, read as a trace on this machine is."""
    events: list[dict[str, Any]] = []
    for e in result["events"]:
        if e[0] == "run":
            events.append({"cat": "Session", "name": "model_run", "ts": e[1], "dur": e[2]})
        else:
            events.append({"cat": "Node", "name": f"{e[2]}_kernel_time", "ts": e[0], "dur": e[1],
                           "args": {"op_name": e[3], "provider": e[4]}})
    return per_run_kernels(events, runs, where)
