"""RunFolder: the one description of a sweep run's layout."""
from studio.core.sweep.run_folder import RunFolder


def test_layout_and_candidate_lookup(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.mkdirs()
    assert run.candidates.is_dir() and run.work.is_dir() and not run.has_results and not run.has_journal
    run.candidate("onnx-int8-p0.00").mkdir()
    assert RunFolder.of_candidate(run.root / "onnx-int8-p0.00") is None  # no results yet: not a finished run
    run.results.write_text("{}")
    for typed in (run.root / "onnx-int8-p0.00", run.candidate("onnx-int8-p0.00")):
        found = RunFolder.of_candidate(typed)
        assert found == (run, "onnx-int8-p0.00")
    assert RunFolder.of_candidate(run.root / "missing") is None
    assert run.stage("onnx", 0.25).name == "onnx-p0.25"
