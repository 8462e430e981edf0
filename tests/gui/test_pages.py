"""Each page of the window, driven through its widgets on the offscreen platform."""
from __future__ import annotations

import json
import shutil
import zipfile

import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import wait_idle


def test_load_page_shows_summary_layers_and_problems(make_window, qtbot, onnx_model, tmp_path):
    w = make_window()
    w.load_model(onnx_model)
    wait_idle(qtbot, w)
    page = w.load
    assert page.banner.property("kind") == "ok" and "is ready" in page.banner.text()
    assert page.metrics["Format"].value.text() == "onnx"
    assert page.layers.model().rowCount() > 5
    ops = {page.ops.model().index(r, 0).data(): page.ops.model().index(r, 1).data()
           for r in range(page.ops.model().rowCount())}
    assert ops.get("QuantizeLinear", 0) >= 1
    assert w.project.model.path == onnx_model
    # a broken file: an error line naming the file, the previous model stays the project's model
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    w.load_model(str(bad))
    wait_idle(qtbot, w)
    assert page.banner.property("kind") == "error"
    assert "broken.onnx" in page.banner.text()
    assert w.project.model.path == onnx_model


def test_optimize_page_counts_candidates_refuses_bad_grid_and_previews_data(make_window, samples):
    from studio.core.recipe.recipe import Target

    w = make_window()
    page = w.optimize
    page.targets["onnx"].setChecked(True)
    page.targets["tflite"].setChecked(False)
    for q, box in page.quants.items():
        box.setChecked(q in ("none", "int8"))
    page.prune.setText("0, 0.5")
    assert "4" in page.count.text() and page.run.isEnabled()
    page.prune.setText("0, 1.5")
    assert not page.run.isEnabled() and "below 1" in page.count.text()
    page.prune.setText("0")
    page.dataset.setText(samples["dataset"])
    page.refresh_preview()
    thumbs = [page.preview.itemAt(i).widget() for i in range(page.preview.count()) if page.preview.itemAt(i).widget()]
    assert len(thumbs) == 8 and all(t.pixmap() is not None and not t.pixmap().isNull() for t in thumbs)
    assert "labelled" in page.data_note.text()
    # the choices are the project's, saved as they change
    assert w.project.sweep.grid.targets == (Target.ONNX,) and w.project.sweep.dataset == samples["dataset"]


def _rows(n_ok: int = 4) -> list:
    from studio.core.recipe.recipe import Quantization, Recipe
    from studio.core.sweep.records import CandidateResult, CandidateStatus

    rows = [CandidateResult(id=f"onnx-c{i}", recipe=Recipe(quantization=Quantization("int8" if i % 2 else "none")),
                            status=CandidateStatus.OK, accuracy=90.0 + i, agreement=99.0,
                            latency_ms_median=1.0 + i * (1 if i != 2 else -0.5), latency_ms_p90=2.0 + i,
                            size_bytes=1000 * (i + 1)) for i in range(n_ok)]
    rows.append(CandidateResult(id="tflite-bad", recipe=Recipe(target="tflite", quantization=Quantization("int8")),
                                status=CandidateStatus.FAILED, error="conversion failed: because"))
    return rows


def _results(rows: list) -> dict:
    """The results document as the core writes it: rows with the core's Pareto flags, the front and best pick."""
    from studio.core.sweep.pareto import recommend
    from studio.core.sweep.results import with_pareto_flags

    flagged = with_pareto_flags(rows)
    return {"candidates": [c.to_dict() for c in flagged], "metric": "top-1 accuracy (%)",
            "pareto": [c.id for c in flagged if c.pareto], "best": recommend(flagged, 100.0, 100.0).id,
            "sensitivity": {"quantization": {"layers": [{"layer": "conv1", "sqnr_db": 20.0},
                                                        {"layer": "fc", "sqnr_db": 45.0}]}}}


def test_preview_page_draws_points_front_table_and_selects(make_window, qtbot):
    w = make_window()
    page = w.preview
    from studio.core.sweep.pareto import pareto_ids, recommend
    from studio.core.sweep.records import CandidateFinished

    page.clear()
    rows = _rows()
    for i, c in enumerate(rows[:2]):  # live, as a sweep emits them: the core's front and pick come along
        pick = recommend(rows[:i + 1], 100.0, 100.0).id
        page.add_candidate(CandidateFinished(c, tuple(pareto_ids(rows[:i + 1])), pick))
    assert len(page.chart.scatter.points()) == 2
    assert {c.id for c in page.candidates.values() if c.pareto} == set(pareto_ids(rows[:2]))
    doc = _results(rows)
    page.set_results(doc)
    assert len(page.chart.scatter.points()) == 4  # the failed one is in the table, not on the chart
    assert page.model.rowCount() == 5
    status = [page.model.item(r, 11).text() for r in range(5)]
    assert status.count("ok") == 4 and "failed: conversion failed: because" in status
    front = {c.id for c in page.candidates.values() if c.pareto}
    assert front and front == set(doc["pareto"]) and "tflite-bad" not in front
    assert f"recommended: <b>{doc['best']}</b>" in page.summary.text()
    x, _y = page.chart.front.getData()
    assert len(x) >= 1
    # sensitivity bars: one per layer, the sensitive layer coloured differently
    assert list(page.sens.bars.opts["height"]) == [20.0, 45.0]
    # sorting by latency puts the fastest first
    page.table.sortByColumn(6, Qt.AscendingOrder)
    order = [page.proxy.index(r, 0).data() for r in range(5)]
    assert order == ["onnx-c2", "onnx-c0", "onnx-c1", "onnx-c3", "tflite-bad"]  # unmeasured last
    # a click on a point chooses the candidate and the export page follows
    with qtbot.waitSignal(page.candidate_chosen) as got:
        page.chart.candidate_clicked.emit("onnx-c2")
    assert got.args == ["onnx-c2"] and w.project.chosen.candidate == "onnx-c2"
    assert "onnx-c2" in w.export.source.text()
    assert page.table.selectionModel().selectedRows()[0].data(Qt.UserRole + 1) == "onnx-c2"
    assert page.chart._tip(0, 0, "onnx-c2").startswith("onnx-c2")
    page.select("tflite-bad")  # a failed candidate cannot be chosen
    assert page.selected == "onnx-c2"


def test_preview_table_marks_a_noisy_latency(make_window):
    from dataclasses import replace

    page = make_window().preview
    rows = _rows()
    rows[1] = replace(rows[1], latency_round_medians_ms=(1.0, 3.0, 2.0, 1.0, 3.0), latency_spread=1.0, noisy=True)
    rows[3] = replace(rows[3], latency_round_medians_ms=(4.0,) * 5, latency_spread=0.0, noisy=False)
    page.set_results(_results(rows))
    latency = {page.model.item(r, 0).text(): page.model.item(r, 6) for r in range(5)}
    assert latency["onnx-c1"].text() == "~2.0000" and "noisy" in latency["onnx-c1"].toolTip()
    assert latency["onnx-c3"].text() == "4.0000" and not latency["onnx-c3"].toolTip()
    assert latency["onnx-c1"].data(Qt.UserRole) == 2.0  # still sorts by the number
    assert "noisy latency" in page.chart._tip(0, 0, "onnx-c1")


@pytest.mark.parametrize("spoil", [lambda row: row.pop("status"),  # KeyError
                                   lambda row: row.update(recipe=5),  # TypeError
                                   lambda row: row["recipe"].update(target="coreml")],  # RecipeError
                         ids=["missing-key", "wrong-type", "unknown-target"])
def test_restoring_a_project_whose_results_are_of_another_shape_warns(make_window, tmp_path, spoil):
    """A results.json that is JSON but not rows this studio reads (odd, or from a newer one) must not stop the
    window from opening: the preview says so and the rest of the session is restored."""
    from studio.core.app.project import ChosenCandidate, ExportSettings, Project
    from studio.core.sweep.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    doc = _results(_rows())
    spoil(doc["candidates"][1])
    run.results.write_text(json.dumps(doc))
    w = make_window(Project(chosen=ChosenCandidate(str(run.root), "onnx-c1"), export=ExportSettings(name="kept"),
                            path=str(tmp_path / "p.studio.json")))
    banner = w.preview.banner
    assert banner.property("kind") == "warning" and "cannot be read; run the sweep again" in banner.text()
    assert str(run.results) in banner.text() and w.preview.candidates == {}
    assert w.export.name.text() == "kept"


def test_export_page_writes_a_verified_bundle_and_reports_bad_input(make_window, qtbot, onnx_model, tmp_path,
                                                                     samples):
    from studio.core.bundle.bundle import verify_bundle
    from studio.core.bundle.signing import new_keypair

    w = make_window()
    w.load_model(onnx_model)
    wait_idle(qtbot, w)
    key, _ = new_keypair(tmp_path / "k.key")
    out = tmp_path / "out" / "m.bundle.zip"
    w.export.name.setText("mnist-test")
    w.export.version.setText("2.1.0")
    w.export.labels.setText(samples["labels"])
    w.export.key.setText(str(key))
    w.export.out.setText(str(out))
    w.run_export()
    wait_idle(qtbot, w)
    assert w.export.banner.property("kind") == "ok", w.export.banner.text()
    assert "Verified: mnist-test 2.1.0" in w.export.banner.text() and "signature checked" in w.export.banner.text()
    assert verify_bundle(out, f"{key}.pub").manifest["labels"][0] == "0"
    assert w.project.bundle.path == str(out)
    assert json.loads((tmp_path / "test.studio.json").read_text())["bundle"]["path"] == str(out)
    # a labels file that does not exist: a message naming it, no bundle written
    w.export.labels.setText(str(tmp_path / "nope.txt"))
    w.export.out.setText(str(tmp_path / "second.bundle.zip"))
    w.run_export()
    wait_idle(qtbot, w)
    assert w.export.banner.property("kind") == "error" and "nope.txt" in w.export.banner.text()
    assert not (tmp_path / "second.bundle.zip").exists()


def test_deploy_page_pushes_to_a_local_device_and_rolls_back(make_window, qtbot, sample_bundles, tmp_path):
    from studio.core.app.project import ExportedBundle
    from studio.core.deploy import inventory

    inventory.add(inventory.demo_device(tmp_path / "board"))
    w = make_window()
    assert w.deploy.table.rowCount() == 1 and w.deploy.checked() == ["demo"]
    assert w.deploy.table.item(0, 2).text() == "nothing installed"
    w.project.bundle = ExportedBundle(str(sample_bundles["onnx"]))
    w.push(["demo"])
    wait_idle(qtbot, w)
    result = w.deploy.table.item(0, 5).text()
    assert result == "Installed v1.0.0, check passed"
    assert w.deploy.table.cellWidget(0, 4).value() == 100
    assert w.deploy.table.item(0, 2).text() == "mnist-onnx 1.0.0"
    w.project.bundle = ExportedBundle(str(sample_bundles["tflite"]))
    w.push(["demo"])
    wait_idle(qtbot, w)
    assert w.deploy.table.item(0, 2).text() == "mnist-tflite 1.0.0"
    w.deploy.table.selectRow(0)
    w.deploy.tool_buttons["Roll back"].click()
    wait_idle(qtbot, w)
    assert w.deploy.banner.property("kind") == "ok" and "rolled back" in w.deploy.banner.text()
    assert w.deploy.table.item(0, 2).text() == "mnist-onnx 1.0.0"
    # probing shows what the device has
    w.probe_device("demo")
    wait_idle(qtbot, w)
    assert "onnxruntime" in w.deploy.details.text()


def test_flash_screen_verifies_at_once_and_reports_in_plain_words(app, qtbot, sample_bundles, tmp_path):
    from studio.core.deploy import inventory
    from studio.gui.flash import FlashWindow

    inventory.add(inventory.demo_device(tmp_path / "board"))
    f = FlashWindow()
    qtbot.addWidget(f)
    f.show()
    # a damaged bundle is red with the reason, and Flash stays disabled
    bad = tmp_path / "damaged.bundle.zip"
    shutil.copy(sample_bundles["onnx"], bad)
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("extra.txt", "not in the manifest")
    f.open_bundle(str(bad))
    qtbot.waitUntil(lambda: f.verdict.property("kind") == "error", timeout=30000)
    assert "extra.txt" in f.verdict.text() and not f.flash.isEnabled()
    f.open_bundle(str(sample_bundles["onnx"]))
    qtbot.waitUntil(lambda: f.verdict.property("kind") == "ok", timeout=30000)
    assert "Ready to flash: mnist-onnx 1.0.0" in f.verdict.text()
    qtbot.waitUntil(lambda: "runs nothing yet" in f.devices.item(0).text(), timeout=30000)
    assert f.checked() == ["demo"] and f.flash.isEnabled()
    qtbot.mouseClick(f.flash, Qt.LeftButton)
    qtbot.waitUntil(lambda: f.task is None and f.outcome.isVisible(), timeout=120000)
    assert f.results.item(0).text() == "demo: Installed v1.0.0, check passed"
    assert f.outcome.property("kind") == "ok"
    assert "Traceback" not in f.results.item(0).text()
    f.close()


def test_trust_dialog_shows_the_fingerprint_and_warns_when_the_key_changed(app, qtbot):
    from PySide6.QtWidgets import QLabel

    from studio.core.deploy.inventory import Device
    from studio.gui.page_deploy import TrustDialog

    device = Device(name="pi", host="10.0.0.7", port=22)
    fresh = TrustDialog(device, "SHA256:abc123", None)
    qtbot.addWidget(fresh)
    texts = " ".join(label.text() for label in fresh.findChildren(QLabel))
    assert "SHA256:abc123" in texts and "10.0.0.7:22" in texts and "has changed" not in texts
    changed = TrustDialog(device, "SHA256:new", "SHA256:old")
    qtbot.addWidget(changed)
    texts = " ".join(label.text() for label in changed.findChildren(QLabel))
    assert "This key has changed" in texts and "SHA256:old" in texts


def test_window_geometry_is_remembered(make_window, qtbot):
    w = make_window()
    w.resize(1111, 777)
    qtbot.waitUntil(lambda: (w.width(), w.height()) == (1111, 777))
    w.close()
    again = make_window()
    assert (again.width(), again.height()) == (1111, 777)


def test_load_page_opens_a_state_dict_of_the_users_own_class_with_consent(make_window, qtbot, tmp_path):
    import torch

    (tmp_path / "net.py").write_text("import torch\n\n\nclass Helper:\n    pass\n\n\nclass Tiny(torch.nn.Module):\n"
                                     "    def __init__(self, width=3):\n        super().__init__()\n"
                                     "        self.fc = torch.nn.Linear(4, width)\n\n"
                                     "    def forward(self, x):\n        return self.fc(x)\n", encoding="utf-8")
    torch.save(torch.nn.Linear(4, 5).state_dict(), tmp_path / "weights.pt")
    sd = {f"fc.{k}": v for k, v in torch.load(tmp_path / "weights.pt").items()}
    torch.save(sd, tmp_path / "weights.pt")
    w = make_window()
    page = w.load
    page.code_file.setText(str(tmp_path / "net.py"))
    page.code_file.editingFinished.emit()
    assert [page.code_class.itemText(i) for i in range(page.code_class.count())] == ["Helper", "Tiny"]
    page.code_class.setCurrentText("Tiny")
    page.arch_args.setText('{"width": 5}')
    w.load_model(str(tmp_path / "weights.pt"))
    wait_idle(qtbot, w)
    assert page.banner.property("kind") == "error" and "--trust-code" in page.banner.text()
    page.trust_code.setChecked(True)
    w.load_model(str(tmp_path / "weights.pt"))
    wait_idle(qtbot, w)
    assert page.info is not None and page.info.params == 4 * 5 + 5, page.banner.text()
    assert w.project.model.arch == f"{tmp_path / 'net.py'}:Tiny" and w.project.model.trust_code


def test_loading_a_model_warms_the_workers_its_sweep_will_use(make_window, qtbot, onnx_model):
    import dataclasses

    from studio.core.base.jobs import run_job
    from studio.core.base.pool import POOL, WorkerKind
    from studio.core.recipe.recipe import Target
    from tests.core.test_warm_workers import _imported  # a module without Qt, for the worker to import

    w = make_window()
    sweep = w.project.sweep
    w.project.sweep = dataclasses.replace(sweep, grid=dataclasses.replace(sweep.grid, targets=(Target.TFLITE,)))
    w.load_model(onnx_model)
    wait_idle(qtbot, w)
    # ONNX to TFLite: onnxruntime (the source), torch (onnx2torch, litert-torch), LiteRT (the candidates)
    kinds = {WorkerKind.ONNXRUNTIME: "onnxruntime", WorkerKind.TORCH: "torch",
             WorkerKind.LITERT: "ai_edge_litert.interpreter"}
    qtbot.waitUntil(lambda: all(POOL.pids(k) for k in kinds), timeout=180_000)
    for kind, module in kinds.items():
        warm = POOL.pids(kind)
        pid, imported = run_job(_imported, module, kind=kind)
        assert pid in warm and imported  # the job ran on the warm worker, its framework already there
