"""Hundreds of truncated and byte-mutated real model files: each loads or raises ModelLoadError, never hangs; what
loads prints and serializes, names that are not valid UTF-8 included."""
import contextlib
import json
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from studio.core.base.errors import ModelLoadError
from studio.core.inspect.inspector import inspect_model
from studio.core.inspect.modelinfo import summary_lines
from studio.core.inspect.tflite_model import inspect_tflite

SEEDS = ["onnx/mnist.onnx", "tflite/hello_world_int8.tflite", "tflite/person_detect.tflite",
         "tflite/trained_lstm.tflite", "tflite/micro_speech_quantized.tflite"]
PER_SEED = 44  # 5 seeds x 44 = 220 variants of third-party files
NAMES_PER_SEED = 6  # and 30 whose names are made invalid UTF-8
LIMIT_S = 60  # no single variant may take longer than this


def variants(data: bytes, count: int, rng: random.Random):
    for i in range(count):
        if i % 3 == 0:  # truncated anywhere, including inside the header
            yield f"truncated at {(cut := rng.randrange(1, len(data)))}", data[:cut]
        else:  # a few random bytes overwritten
            buf = bytearray(data)
            for _ in range(rng.choice((1, 2, 8, 32))):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            yield "mutated", bytes(buf)


def name_variants(data: bytes, count: int, rng: random.Random):
    """Bytes inside identifier-like runs (tensor, node and operator names) replaced by bytes that are not UTF-8;
    a string's content changes, its length prefix does not."""
    runs = [m.span() for m in re.finditer(rb"[A-Za-z_][A-Za-z0-9_]{7,}", data)]
    for _ in range(count):
        start, end = rng.choice(runs)
        at = rng.randrange(start + 2, end - 2)
        yield "name not UTF-8", data[:at] + b"\xff\xfe" + data[at + 2:]


def check(path, how):
    start = time.monotonic()
    try:
        info = inspect_model(path, timeout=LIMIT_S)
        "\n".join(summary_lines(info)).encode()  # what inspect prints and writes must be text, whatever the names
        json.dumps(info.to_dict())
        outcome = "loaded"
    except ModelLoadError as exc:
        line = exc.one_line()
        assert str(path) in line and "\n" not in line and "Traceback" not in line, line
        outcome = "refused"
    elapsed = time.monotonic() - start
    assert elapsed < LIMIT_S, f"{path} ({how}) took {elapsed:.0f} s"
    return outcome


def test_mutated_third_party_models(shared_models, tmp_path):
    rng = random.Random(1234)
    jobs = []
    for seed in SEEDS:
        data = (shared_models / seed).read_bytes()
        made = [*variants(data, PER_SEED, rng), *name_variants(data, NAMES_PER_SEED, rng)]
        for i, (how, blob) in enumerate(made):
            path = tmp_path / f"{i:03d}_{seed.replace('/', '_')}"
            path.write_bytes(blob)
            jobs.append((path, how))
    assert len(jobs) >= 200
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda job: check(*job), jobs))
    # both paths are exercised: corrupt files are refused, and harmless mutations (weight bytes) still load
    assert outcomes.count("refused") > 20 and outcomes.count("loaded") > 20
    named = [o for (_, how), o in zip(jobs, outcomes, strict=True) if how == "name not UTF-8"]
    assert named.count("loaded") >= len(named) * 2 // 3, named  # a name's bytes are not the file's structure


def test_tflite_parser_itself_raises_only_model_load_error(shared_models, tmp_path):
    """The flatbuffer walk is pure Python: without the worker-process safety net it must still fail cleanly."""
    rng = random.Random(99)
    data = (shared_models / "tflite" / "person_detect.tflite").read_bytes()
    path = tmp_path / "m.tflite"
    for _how, blob in variants(data, 300, rng):
        path.write_bytes(blob)
        with contextlib.suppress(ModelLoadError):
            inspect_tflite(str(path))


@pytest.mark.parametrize("key", ["torch_model", "keras_model"])
def test_mutated_sample_archives(samples, tmp_path, key):
    rng = random.Random(7)
    data = Path(samples[key]).read_bytes()
    suffix = samples[key].rsplit(".", 1)[1]
    for i, (how, blob) in enumerate(variants(data, 6, rng)):
        path = tmp_path / f"v{i}.{suffix}"
        path.write_bytes(blob)
        check(path, how)
