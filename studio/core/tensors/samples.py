"""Inputs for N samples of a model with any number of inputs, and how they are cut into runs at the right shapes."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from studio.core.tensors.shapes import BatchMode, InputShape

MAX_BATCH = 64


@dataclass(frozen=True, eq=False)
class Samples:
    """Per input either one value per sample (`[N, *sample_shape]`) or one constant value (the input's exact run
    shape) used for every sample: a recurrent model's state, a 0-d sample rate."""
    inputs: tuple[InputShape, ...]
    arrays: tuple[np.ndarray, ...]
    constant: tuple[bool, ...]

    def __post_init__(self):
        if not (len(self.inputs) == len(self.arrays) == len(self.constant)):
            raise ValueError("Samples needs one array and one constant flag per input")

    def __len__(self) -> int:
        counts = [len(a) for a, c in zip(self.arrays, self.constant, strict=True) if not c]
        return min(counts) if counts else 1

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def head(self, n: int) -> Samples:
        return Samples(self.inputs, tuple(a if c else a[:n] for a, c in zip(self.arrays, self.constant, strict=True)),
                       self.constant)

    def with_inputs(self, inputs: Sequence[InputShape]) -> Samples:
        """The same values, named and shaped as another model's inputs (a converted model renames them)."""
        return Samples(tuple(inputs), self.arrays, self.constant)

    def step(self, max_batch: int = MAX_BATCH) -> int:
        """Samples per run: the fixed batch where an input fixes one (inputs with a dynamic batch take as many), else
        a batch (up to `max_batch`) where every input takes one, else one at a time."""
        batched = [i for i, c in zip(self.inputs, self.constant, strict=True) if not c]
        modes = {i.batch for i in batched}
        fixed = {i.batch_size for i in batched if i.batch == BatchMode.FIXED}
        if len(fixed) == 1 and BatchMode.NONE not in modes:
            return fixed.pop()
        return max_batch if modes == {BatchMode.DYNAMIC} and not any(self.constant) else 1

    def runs(self, max_batch: int = MAX_BATCH) -> Iterator[tuple[list[np.ndarray], int]]:
        """(feeds for one run, how many real samples it holds): the last fixed batch is padded with its last sample."""
        n, step = len(self), self.step(max_batch)
        for start in range(0, n, step):
            real = min(step, n - start)
            yield [self._feed(i, a, c, start, real, step) for i, a, c in zip(self.inputs, self.arrays, self.constant,
                                                                              strict=True)], real

    def sample(self, i: int) -> list[np.ndarray]:
        """The feeds of sample i alone (a batch of one where the input is batched)."""
        return [a if c else _one(s, a[i:i + 1]) for s, a, c in zip(self.inputs, self.arrays, self.constant,
                                                                    strict=True)]

    def first(self) -> list[np.ndarray]:
        """One run's feeds at exactly the resolved shapes (from the first samples): what latency is timed on."""
        return [a if c else _one(i, _repeat(a, i.batch_size)) for i, a, c in zip(self.inputs, self.arrays,
                                                                                 self.constant, strict=True)]

    @staticmethod
    def _feed(spec: InputShape, array: np.ndarray, constant: bool, start: int, real: int, step: int) -> np.ndarray:
        if constant:
            return array
        chunk = array[start:start + real]
        if spec.batch == BatchMode.FIXED and real < step:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - real, axis=0)])
        return _one(spec, chunk)

    def to_npz(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays for an .npz: PREFIX000, PREFIX001 ... and PREFIX_constant."""
        out = {f"{prefix}{k:03d}": a for k, a in enumerate(self.arrays)}
        out[f"{prefix}_constant"] = np.asarray(self.constant, bool)
        return out

    @classmethod
    def from_npz(cls, arrays: dict[str, np.ndarray], prefix: str, inputs: Sequence[InputShape]) -> Samples:
        flags = tuple(bool(v) for v in arrays[f"{prefix}_constant"])
        return cls(tuple(inputs), tuple(arrays[f"{prefix}{k:03d}"] for k in range(len(flags))), flags)


def gather(samples: Samples, call: Callable[[list[np.ndarray]], list[np.ndarray]],
           max_batch: int = MAX_BATCH) -> list[np.ndarray]:
    """Every run's outputs of `call(feeds)` as one array [N, ...] per output: a batched run's rows are taken as they
    are (the padding of a fixed batch dropped), an unbatched run's output becomes one row."""
    batched = all(i.batch != BatchMode.NONE for i, c in zip(samples.inputs, samples.constant, strict=True) if not c)
    first = next((k for k, c in enumerate(samples.constant) if not c), None)
    chunks: list[list[np.ndarray]] | None = None
    for feeds, real in samples.runs(max_batch):
        size = len(feeds[first]) if first is not None and feeds[first].ndim else 0
        outputs = call(feeds)
        chunks = chunks if chunks is not None else [[] for _ in outputs]
        for out, y in zip(chunks, outputs, strict=True):
            out.append(y[:real] if batched and y.ndim and len(y) == size else y[None])
    return [np.concatenate(c) for c in chunks or []]


def _repeat(a: np.ndarray, n: int) -> np.ndarray:
    return a[:n] if len(a) >= n else np.concatenate([a, np.repeat(a[-1:], n - len(a), axis=0)])


def _one(spec: InputShape, chunk: np.ndarray) -> np.ndarray:
    """Samples [k, *sample_shape] as one run's value: batched inputs take them as they are, an input without a batch
    dim takes its one sample."""
    return chunk if spec.batch != BatchMode.NONE else chunk[0]


def synthetic(inputs: Sequence[InputShape], n: int, seed: int = 0) -> Samples:
    """Stand-in inputs at the resolved shapes when the user gave no data (the report says so): normal floats, and
    zeros for integer and boolean inputs (a made-up index or flag would only mislead)."""
    rng = np.random.default_rng(seed)
    arrays, constant = [], []
    for spec in inputs:
        dtype = np.dtype(spec.dtype) if spec.dtype in np.sctypeDict else np.dtype(np.float32)
        per_sample = spec.batch != BatchMode.NONE or dtype.kind == "f"
        shape = (n, *spec.sample_shape) if per_sample else spec.shape
        value = rng.standard_normal(shape).astype(np.float32) if dtype.kind == "f" else np.zeros(shape, dtype)
        arrays.append(value)
        constant.append(not per_sample)
    return Samples(tuple(inputs), tuple(arrays), tuple(constant))


def single(x: np.ndarray, spec: InputShape) -> Samples:
    """Samples of a one-input model from one array [N, *sample_shape]."""
    return Samples((spec,), (x,), (False,))


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Labelled samples for recovery fine-tuning after pruning: every input's values and the labels they train
    toward (on the output whose shape fits them)."""
    samples: Samples
    y: np.ndarray
