"""Input shapes resolved once: from `--input-shape`, else from the data, else the model's own static dims."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from studio.core.base.errors import StudioError
from studio.core.tensors.spec import TensorInfo, TensorKind


class ShapeError(StudioError):
    """An input shape that is not given, not valid, or does not fit the model."""


class BatchMode(StrEnum):
    """How samples go into one input."""
    DYNAMIC = "dynamic"  # the first dim is dynamic: several samples per run; batch 1 when timing
    FIXED = "fixed"  # the first dim is a fixed batch (usually 1): exactly that many samples per run
    NONE = "none"  # no batch dim (a state tensor, a 0-d scalar, an [3, 2] table): the exact shape every run


class Origin(StrEnum):
    """Where an input's resolved dims came from (the report says which)."""
    MODEL = "model"
    GIVEN = "--input-shape"
    DATA = "data"


def batch_mode(shape: Sequence[int | str]) -> BatchMode:
    if not shape:
        return BatchMode.NONE
    if isinstance(shape[0], str):
        return BatchMode.DYNAMIC
    if (len(shape) >= 2 and shape[0] == 1) or len(shape) >= 4:  # images: N,C,H,W or N,H,W,C with a fixed N
        return BatchMode.FIXED
    return BatchMode.NONE


@dataclass(frozen=True)
class InputShape:
    """One model input at the shape it is run at: every dim a number, dynamic ones resolved."""
    name: str
    dtype: str  # numpy dtype name, e.g. "float32", "int64"
    shape: tuple[int, ...]  # one run: batch 1 (or the fixed batch) for a batched input, else the exact shape
    batch: BatchMode
    origin: Origin = Origin.MODEL

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: without the batch dim where the input has one."""
        return self.shape[1:] if self.batch != BatchMode.NONE else self.shape

    @property
    def batch_size(self) -> int:
        """Samples in one run at this shape (a dynamic batch resolved to 8 by the user times batches of 8)."""
        return self.shape[0] if self.batch != BatchMode.NONE else 1

    def text(self) -> str:
        return f"{self.name} {list(self.shape)} {self.dtype}"


def parse_dims(text: str) -> tuple[int, ...]:
    """'1,3,320,320' or '1x3x320x320' -> (1, 3, 320, 320); '' or 'scalar' -> () for a 0-d input."""
    cleaned = text.strip().lower().replace("x", ",")
    if cleaned in ("", "scalar", "()", "[]"):
        return ()
    try:
        dims = tuple(int(x) for x in cleaned.strip("[]()").split(",") if x.strip())
    except ValueError:
        raise ShapeError(f"'{text}' is not a shape like 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise ShapeError(f"'{text}' is not a shape like 1,3,224,224 (every dim a positive number)")
    return dims


DTYPES = ("float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")


def parse_entry(text: str) -> tuple[str, tuple[int, ...], str]:
    """'[NAME=]DIMS[:DTYPE]' -> (name or "", dims, dtype or ""): the dtype is for formats that declare none (a PyTorch
    module's int64 input)."""
    name, sep, rest = str(text).rpartition("=")
    dims, colon, dtype = rest.rpartition(":") if ":" in rest else (rest, "", "")
    dtype = dtype.strip().lower()
    if colon and dtype not in DTYPES:
        raise ShapeError(f"'{text}': '{dtype}' is not a dtype; use one of {', '.join(DTYPES)}")
    return name.strip() if sep else "", parse_dims(dims), dtype


@dataclass(frozen=True)
class ShapeRequest:
    """What the user asked for: `--input-shape 1,3,320,320` (the single input) or `NAME=1,3,320,320` (repeatable),
    each optionally with `:DTYPE` (`step=scalar:int64`) for inputs whose format records no dtype."""
    entries: tuple[tuple[str, tuple[int, ...]], ...] = ()  # name "" for the unnamed one
    dtypes: tuple[tuple[str, str], ...] = ()  # (name, numpy dtype name) where one was given

    @classmethod
    def parse(cls, texts: Iterable[str] | str | None) -> ShapeRequest:
        if texts is None:
            return cls()
        entries: list[tuple[str, tuple[int, ...]]] = []
        dtypes: list[tuple[str, str]] = []
        for text in [texts] if isinstance(texts, str) else texts:
            name, dims, dtype = parse_entry(text)
            entries.append((name, dims))
            dtypes += [(name, dtype)] if dtype else []
        names = [n for n, _ in entries]
        if len(set(names)) != len(names):
            raise ShapeError("an input shape is given twice" + (f" for '{names[0]}'" if names[0] else ""))
        if "" in names and len(names) > 1:
            raise ShapeError("with several --input-shape values, name each input: --input-shape NAME=1,3,224,224")
        return cls(tuple(entries), tuple(dtypes))

    @classmethod
    def of(cls, shape: Sequence[int] | None) -> ShapeRequest:
        """The request for one unnamed shape (None: nothing asked)."""
        return cls((("", tuple(int(d) for d in shape)),) if shape is not None else ())

    def __bool__(self) -> bool:
        return bool(self.entries)

    @property
    def single(self) -> tuple[int, ...] | None:
        """The one shape given, named or not: for formats that declare no inputs (a PyTorch module)."""
        return self.entries[0][1] if len(self.entries) == 1 else None

    def texts(self) -> list[str]:
        def text(n: str, d: tuple[int, ...]) -> str:
            dims = ",".join(map(str, d)) or "scalar"
            dtype = self.dtype(n)
            return (f"{n}=" if n else "") + dims + (f":{dtype}" if dtype else "")

        return [text(n, d) for n, d in self.entries]

    def dtype(self, name: str) -> str:
        """The dtype given for `name` ("" when none was)."""
        return next((t for n, t in self.dtypes if n in (name, "")), "")

    def merged(self, other: ShapeRequest) -> ShapeRequest:
        """This request, with `other`'s shapes and dtypes for the inputs it does not name."""
        names = {n for n, _ in self.entries}
        typed = {n for n, _ in self.dtypes}
        return ShapeRequest(self.entries + tuple(e for e in other.entries if e[0] not in names),
                            self.dtypes + tuple(e for e in other.dtypes if e[0] not in typed | names))

    def check_names(self, inputs: Sequence[TensorInfo], path: str | None = None) -> None:
        known = [t.name for t in inputs]
        for name, _ in self.entries:
            if name and name not in known:
                raise ShapeError(f"--input-shape names '{name}', but the model's inputs are {', '.join(known)}", path)
        if len(self.entries) == 1 and not self.entries[0][0] and len(inputs) > 1:
            raise ShapeError(f"the model has {len(inputs)} inputs ({', '.join(known)}): name the one the shape is for,"
                             f" as --input-shape {known[0]}=...", path)

    def lookup(self, name: str) -> tuple[int, ...] | None:
        return next((d for n, d in self.entries if n in (name, "")), None)


def resolve(inputs: Sequence[TensorInfo], request: ShapeRequest = ShapeRequest(),
            data: Mapping[str, tuple[int, ...]] | None = None, path: str | None = None) -> tuple[InputShape, ...]:
    """Every input's run shape: the user's shape, else the data's (one run's shape), else the model's static dims;
    a dynamic batch dim alone becomes 1. A dim nobody resolves is a ShapeError naming the input and the dim."""
    request.check_names(inputs, path)
    resolved = tuple(_resolve_one(t, request.lookup(t.name), (data or {}).get(t.name), path) for t in inputs)
    return _common_batch(resolved)


def _common_batch(inputs: tuple[InputShape, ...]) -> tuple[InputShape, ...]:
    """Where one input fixes a batch above 1, a dynamic batch the user did not give runs at that batch too (the
    model's samples go through together)."""
    fixed = {i.batch_size for i in inputs if i.batch == BatchMode.FIXED}
    if len(fixed) != 1 or (batch := fixed.pop()) == 1:
        return inputs
    return tuple(replace(i, shape=(batch, *i.shape[1:])) if i.batch == BatchMode.DYNAMIC and i.origin != Origin.GIVEN
                 else i for i in inputs)


def _resolve_one(t: TensorInfo, given: tuple[int, ...] | None, seen: tuple[int, ...] | None,
                 path: str | None) -> InputShape:
    mode = batch_mode(t.shape)
    for dims, origin in ((given, Origin.GIVEN), (seen, Origin.DATA)):
        if dims is None:
            continue
        mismatch = fits(t, dims)
        if mismatch:
            where = "--input-shape" if origin == Origin.GIVEN else "the data"
            raise ShapeError(f"input '{t.name}' {t.shape_text()}: {where} gives {list(dims)}; {mismatch}", path)
        return InputShape(t.name, t.dtype, tuple(dims), batch_mode(dims) if t.kind == TensorKind.UNKNOWN else mode,
                          origin)
    if t.kind == TensorKind.UNKNOWN:
        raise ShapeError(f"input '{t.name}': the model does not record its shape; give it with --input-shape"
                         f" {t.name}=1,3,224,224 (add :int64 for an integer input) or with data holding an array"
                         f" '{t.name}'", path)
    open_dims = [(i, d) for i, d in t.dynamic_dims if not (i == 0 and mode == BatchMode.DYNAMIC)]
    if open_dims:
        axis, name = open_dims[0]
        label = f"'{name}'" if name != "?" else "a dynamic dim"
        raise ShapeError(f"input '{t.name}' {t.shape_text()}: {label} (axis {axis}) is not known; give it with"
                         f" --input-shape {t.name}={_example(t, mode)} or with data", path)
    shape = tuple(1 if isinstance(d, str) else int(d) for d in t.shape)
    return InputShape(t.name, t.dtype, shape, mode)


def _example(t: TensorInfo, mode: BatchMode) -> str:
    dims = ["1" if i == 0 and mode == BatchMode.DYNAMIC else (f"<{d}>" if d != "?" else "<n>") if isinstance(d, str)
            else str(d) for i, d in enumerate(t.shape)]
    return ",".join(dims)


def fits(t: TensorInfo, dims: Sequence[int]) -> str:
    """'' when `dims` fits the declared shape of `t`, else why not (any shape fits an input of unknown shape)."""
    if t.kind == TensorKind.UNKNOWN:
        return ""
    if len(dims) != len(t.shape):
        return f"it has {len(t.shape)} dims"
    for axis, (want, got) in enumerate(zip(t.shape, dims, strict=True)):
        if isinstance(want, int) and want != got:
            return f"dim {axis} is fixed at {want}"
    return ""
