"""Hundreds of truncated and byte-mutated real model files: each loads or raises ModelLoadError, never hangs."""
import contextlib
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from studio.core.base.errors import ModelLoadError
from studio.core.inspect.inspector import inspect_model
from studio.core.inspect.tflite_model import inspect_tflite

SEEDS = ["onnx/mnist.onnx", "tflite/hello_world_int8.tflite", "tflite/person_detect.tflite",
         "tflite/trained_lstm.tflite", "tflite/micro_speech_quantized.tflite"]
PER_SEED = 44  # 5 seeds x 44 = 220 variants of third-party files
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


def check(path, how):
    start = time.monotonic()
    try:
        inspect_model(path, timeout=LIMIT_S)
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
        for i, (how, blob) in enumerate(variants(data, PER_SEED, rng)):
            path = tmp_path / f"{i:03d}_{seed.replace('/', '_')}"
            path.write_bytes(blob)
            jobs.append((path, how))
    assert len(jobs) >= 200
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda job: check(*job), jobs))
    # both paths are exercised: corrupt files are refused, and harmless mutations (weight bytes) still load
    assert outcomes.count("refused") > 20 and outcomes.count("loaded") > 20


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
