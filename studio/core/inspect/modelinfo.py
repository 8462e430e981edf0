"""What `inspect` learns about a model: plain dataclasses that turn into the documented JSON object."""
from __future__ import annotations

import os
from dataclasses import KW_ONLY, asdict, dataclass, field
from typing import Any

from studio.core.base.errors import StudioError, short
from studio.core.inspect.formats import Framework
from studio.core.tensors.spec import Dim, Quantization, TensorInfo, TensorKind

__all__ = ["Dim", "LayerInfo", "ModelInfo", "Problem", "Quantization", "TensorInfo", "TensorKind", "readable_name",
           "undecodable_name"]


@dataclass(frozen=True)
class Problem:
    severity: str  # "error": the model cannot run here; "warning": it runs here but something needs attention
    code: str  # stable identifier, e.g. "custom-op", "runtime-refused"
    message: str


@dataclass(frozen=True)
class LayerInfo:
    name: str
    op: str
    params: int = 0
    output_shape: list[Dim] | None = None


@dataclass
class ModelInfo:
    path: str
    # onnx | tflite | torchscript | torch_export | torch_state_dict | torch_module | keras | h5 | savedmodel
    format: str
    framework: Framework
    _: KW_ONLY  # the rest by name: a dozen positional values read as a riddle at the call site
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    params: int
    size_bytes: int
    files: list[str]
    weight_dtypes: dict[str, int]  # dtype -> number of weight values of that dtype
    ops: dict[str, int]  # operator -> count
    macs: int | None
    problems: list[Problem] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # format-specific facts (opset, producer, ...)
    layers: list[LayerInfo] = field(default_factory=list)

    @property
    def runnable(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def require_runnable(self, error: type[StudioError], doing: str, path: str | os.PathLike | None = None, *,
                         runtimes_only: bool = False) -> None:
        """Refuse a model that does not run here: raise `error("<doing>: <its first error>", path)`.

        runtimes_only: refuse only what ONNX Runtime or LiteRT refused (a framework's own loader is the check
        for the other formats, later)."""
        if runtimes_only and self.framework not in (Framework.ONNX, Framework.TFLITE):
            return
        problem = next((p for p in self.problems if p.severity == "error"), None)
        if problem is not None:
            raise error(f"{doing}: {problem.message}", path)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["schema_version"] = 1
        out["runnable"] = self.runnable
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        def tensor(t):
            q = t.get("quantization")
            return TensorInfo(t["name"], list(t["shape"]), t["dtype"], Quantization(**q) if q else None,
                              TensorKind(t.get("kind", "tensor")), t.get("description", ""))

        return cls(
            path=d["path"], format=d["format"], framework=Framework(d["framework"]),
            inputs=[tensor(t) for t in d["inputs"]], outputs=[tensor(t) for t in d["outputs"]],
            params=d["params"], size_bytes=d["size_bytes"], files=list(d["files"]),
            weight_dtypes=dict(d["weight_dtypes"]), ops=dict(d["ops"]), macs=d["macs"],
            problems=[Problem(**p) for p in d.get("problems", [])], details=dict(d.get("details", {})),
            layers=[LayerInfo(**x) for x in d.get("layers", [])],
        )


def readable_name(raw: str | bytes) -> str:
    """A name as text: bytes that are not valid UTF-8 are shown escaped (b'\\xff' reads '\\xff'), never a crash."""
    return raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace")


def undecodable_name(runtime: str, exc: UnicodeDecodeError) -> Problem:
    """A runtime that loads the model but whose Python API decodes every tensor name as UTF-8, and fails on one."""
    return Problem("error", "runtime-refused", f"{runtime} loads the model, but its Python API cannot read a tensor"
                   f" name that is not valid UTF-8 ({short(exc, 120)}); re-export or rename it (for ONNX, with"
                   " onnx.helper) and save the model again")


def histogram(names) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def human_count(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def summary_lines(info: ModelInfo, max_ops: int = 12) -> list[str]:
    """The human-readable inspect report (CLI output, GUI summary)."""

    def tensor_line(t: TensorInfo) -> str:
        q = ""
        if t.quantization:
            s, z = t.quantization.scale, t.quantization.zero_point
            per_axis = f"  per-axis({t.quantization.axis}) x{len(s)}"
            q = f"  scale={s[0]:.6g} zero_point={z[0]}" if len(s) == 1 else per_axis
        if t.kind != TensorKind.TENSOR:
            return f"    {t.name:<24} {t.shape_text()}"
        return f"    {t.name:<24} {t.shape_text():<20} {t.dtype}{q}"

    lines = [f"{info.path}", f"  format      {info.format} ({info.framework})",
             f"  size        {human_bytes(info.size_bytes)} ({info.size_bytes} bytes)"
             + (f" in {len(info.files)} files" if len(info.files) > 1 else ""),
             f"  parameters  {human_count(info.params)} ({info.params})",
             "  weights     " + (", ".join(f"{k}: {human_count(v)}" for k, v in info.weight_dtypes.items()) or "none"),
             f"  MACs        {human_count(info.macs)}" + (" (batch 1)" if info.macs else ""),
             "  inputs" + ("" if info.inputs else "      unknown")]
    lines += [tensor_line(t) for t in info.inputs]
    lines += ["  outputs" + ("" if info.outputs else "     unknown")] + [tensor_line(t) for t in info.outputs]
    if any(t.dynamic for t in info.inputs + info.outputs):
        lines.append("    (a dimension marked ? is dynamic)")
    if info.ops:
        inside = info.details.get("subgraph_ops")
        lines.append(f"  operators   {sum(info.ops.values())} in total"
                     + (f" ({inside} inside If/Loop/Scan subgraphs)" if inside else ""))
        items = list(info.ops.items())
        lines += [f"    {count:>5}  {name}" for name, count in items[:max_ops]]
        if len(items) > max_ops:
            lines.append(f"    ... and {len(items) - max_ops} more kinds")
    for key in ("opset", "ir_version", "producer", "schema_version", "arch"):
        if info.details.get(key):
            lines.append(f"  {key:<11} {info.details[key]}")
    if info.problems:
        lines.append("  problems")
        lines += [f"    {p.severity.upper()}: {p.message}" for p in info.problems]
    else:
        lines.append("  problems    none found")
    return lines
