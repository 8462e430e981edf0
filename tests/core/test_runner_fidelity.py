"""The device runner's own fidelity code gives the same numbers as measure/fidelity.py (the sweep's metrics)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from studio.core.bundle import runner as runner_path
from studio.core.measure.fidelity import per_output


def device_runner():
    spec = importlib.util.spec_from_file_location("device_runner", runner_path.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = {
    "class scores": (lambda r: r.standard_normal((32, 10)), "logits", 1),
    "probabilities": (lambda r: np.abs(r.standard_normal((32, 5))) / 3, "out", 2),
    "feature map": (lambda r: r.standard_normal((32, 3, 4, 4)), "features", 2),
    "one value": (lambda r: r.standard_normal((32, 1)), "score", 2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_runner_fidelity_equals_the_sweep_metrics(case):
    make, name, outputs = CASES[case]
    rng = np.random.default_rng(7)
    ref = make(rng).astype(np.float32)
    if case == "probabilities":
        ref = ref / ref.sum(1, keepdims=True)
    got = (ref + rng.standard_normal(ref.shape).astype(np.float32) * 0.3).astype(np.float32)
    [want] = per_output([ref], [got], [name] if outputs == 1 else [name, "x"][:1])
    mine = device_runner().fidelity(np, ref, got, name, outputs == 1)
    assert mine["cosine"] == pytest.approx(want.cosine, rel=1e-12)
    assert mine["sqnr_db"] == pytest.approx(want.sqnr_db, rel=1e-12)
    assert mine["max_abs"] == pytest.approx(want.max_abs_error, rel=1e-12)
    assert (mine["agreement"] is None) == (want.top1_agreement is None)
    if want.top1_agreement is not None:
        assert mine["agreement"] == pytest.approx(want.top1_agreement)


def test_identical_outputs_have_no_sqnr():
    ref = np.ones((4, 3), np.float32)
    assert device_runner().fidelity(np, ref, ref.copy(), "y", True)["sqnr_db"] is None
