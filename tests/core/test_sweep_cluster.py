"""`studio sweep --cluster`: the sample model swept on a real Ray cluster on loopback (a head and a worker node) gives
the local sweep's results; a node killed mid-sweep, a lost cluster and other library versions are handled."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from studio.core.base.errors import StudioError
from studio.core.base.versions import library_versions
from studio.core.recipe.grid import Grid
from studio.core.sweep.executor import ClusterOptions, ExecutorLost
from studio.core.sweep.records import CandidateFinished
from studio.core.sweep.sweep import SweepOptions, run_sweep
from tests.conftest import run_cli
from tests.core.ray_cluster import RayCluster

GRID = Grid(targets=("onnx",), quant=("none", "dynamic", "int8"), prune=(0.0,))
COMPARED = ("status", "accuracy", "top5", "agreement", "cosine", "sqnr_db", "metric_value", "fidelity", "error")


@pytest.fixture(scope="module")
def cluster():
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay short
    c = RayCluster(ray_tmp)
    try:
        c.start_head()
        c.add_worker()
        yield c
    finally:
        c.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def local_doc(samples, tmp_path_factory) -> dict:
    return run_sweep(samples["torch_model"], GRID, samples["dataset"], tmp_path_factory.mktemp("local") / "run")


def _on_cluster(cluster: RayCluster, **kw) -> SweepOptions:
    return SweepOptions(workers=0, cluster=ClusterOptions(cluster.address, **kw))


def _same_results(doc: dict, local: dict) -> None:
    ours, theirs = ({c["id"]: c for c in d["candidates"]} for d in (doc, local))
    assert sorted(ours) == sorted(theirs)
    for cid, row in ours.items():
        assert {k: row.get(k) for k in COMPARED} == {k: theirs[cid].get(k) for k in COMPARED}, cid


def test_a_cluster_sweep_equals_the_local_one_and_ships_each_file_once_per_node(cluster, local_doc, samples,
                                                                                  tmp_path):
    doc = run_sweep(samples["torch_model"], GRID, samples["dataset"], tmp_path / "run", options=_on_cluster(cluster))
    _same_results(doc, local_doc)
    nodes = {n["node"] for n in doc["cluster"]["nodes"]}
    assert len(nodes) == 2 and all(n["versions"] == library_versions() for n in doc["cluster"]["nodes"])
    for row in doc["candidates"]:
        assert row["built_on"] in nodes
        assert row["latency_ms_median"] > 0 and row["runtime"] == "onnxruntime"  # timed here, by the measure gate
        model = tmp_path / "run" / row["path"]
        assert model.stat().st_size == row["size_bytes"]
    # model, data and the one float stage: unpacked at most once on each node, whatever the number of candidates
    for i in range(2):
        unpacked = [p for p in (cluster.tmp(i) / "studio-cluster").iterdir() if (p / ".complete").is_file()]
        assert len(unpacked) <= 3
    assert sum(len(list((cluster.tmp(i) / "studio-cluster").glob("*/.complete"))) for i in range(2)) >= 3


def test_a_ray_client_address_gives_the_same_results(cluster, local_doc, samples, tmp_path):
    options = SweepOptions(workers=0, cluster=ClusterOptions(cluster.client_address))
    try:
        doc = run_sweep(samples["torch_model"], GRID, samples["dataset"], tmp_path / "run", options=options)
    except StudioError as exc:  # the head's Ray Client server logs say why; the fixture deletes them afterwards
        raise AssertionError(f"{exc.one_line()}\n{cluster.client_server_logs()}") from exc
    _same_results(doc, local_doc)
    assert doc["cluster"]["address"] == cluster.client_address


def test_a_node_killed_mid_sweep_has_its_task_retried_and_the_sweep_completes(cluster, local_doc, samples,
                                                                             tmp_path):
    worker = cluster.add_worker()  # a third node, killed while it builds a candidate
    busy = cluster.tmp_of(worker) / "studio-cluster"
    killed = threading.Event()

    def kill_when_busy() -> None:
        while not killed.is_set():
            if busy.is_dir() and any(busy.glob("candidate-*")):
                cluster.kill(worker)
                killed.set()
            killed.wait(0.05)

    watcher = threading.Thread(target=kill_when_busy, daemon=True)
    watcher.start()
    try:
        doc = run_sweep(samples["torch_model"], GRID, samples["dataset"], tmp_path / "run",
                        options=_on_cluster(cluster))
    finally:
        killed.set()
        watcher.join()
    assert worker.poll() is not None  # it was killed during the sweep
    _same_results(doc, local_doc)
    assert all(row["status"] == "ok" for row in doc["candidates"])


def test_cancel_on_a_cluster_keeps_what_finished_and_a_rerun_resumes_it(cluster, local_doc, samples, tmp_path):
    from studio.core.base.errors import Cancelled
    from studio.core.base.progress import CancelToken
    from studio.core.sweep.results import read_journal

    run, token, first = tmp_path / "run", CancelToken(), []

    def cancel_after_first(event):
        if isinstance(event, CandidateFinished):
            first.append(event.candidate.id)
            token.cancel()

    with pytest.raises(Cancelled, match="run it again"):
        run_sweep(samples["torch_model"], GRID, samples["dataset"], run, options=_on_cluster(cluster), cancel=token,
                  on_event=cancel_after_first)
    kept = read_journal(run / "journal.jsonl")
    assert first and set(first) <= set(kept) and len(kept) < 3  # cancelled tasks were not waited for
    again: list[str] = []
    doc = run_sweep(samples["torch_model"], GRID, samples["dataset"], run, options=_on_cluster(cluster),
                    on_event=lambda e: again.append(e.candidate.id) if isinstance(e, CandidateFinished) else None)
    assert not set(kept) & set(again)  # nothing finished before is redone
    _same_results(doc, local_doc)


def test_a_lost_cluster_stops_the_sweep_and_a_rerun_resumes(samples, local_doc, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", "3")  # the driver gives up on a dead head soon
    lone = RayCluster(Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp")))
    run = tmp_path / "run"
    try:
        lone.start_head()

        def lose_cluster(event):
            if isinstance(event, CandidateFinished):
                lone.stop()

        with pytest.raises(ExecutorLost, match=f"lost the connection to the Ray cluster at {lone.address}"):
            run_sweep(samples["torch_model"], GRID, samples["dataset"], run, options=_on_cluster(lone),
                      on_event=lose_cluster)
        first = json.loads((run / "results.json").read_text())
        assert first["interrupted"] and 1 <= len(first["candidates"]) < 3
        kept = {c["id"]: (run / c["path"]).stat().st_mtime_ns for c in first["candidates"]}
        lone.start_head()
        doc = run_sweep(samples["torch_model"], GRID, samples["dataset"], run, options=_on_cluster(lone))
    finally:
        lone.stop()
        shutil.rmtree(lone.temp, ignore_errors=True)
    _same_results(doc, local_doc)
    assert {cid: (run / next(c["path"] for c in doc["candidates"] if c["id"] == cid)).stat().st_mtime_ns
            for cid in kept} == kept  # finished candidates were not built again


def test_a_cluster_with_other_library_versions_is_refused_with_the_differences(cluster, samples, tmp_path,
                                                                               monkeypatch):
    import studio.core.sweep.cluster.client as client

    here = {**library_versions(), "torch": "0.0.1"}
    here.pop("onnx")
    monkeypatch.setattr(client, "library_versions", lambda: here)
    with pytest.raises(StudioError) as err:
        run_sweep(samples["torch_model"], GRID, samples["dataset"], tmp_path / "run", options=_on_cluster(cluster))
    text = err.value.one_line()
    assert "other library versions" in text
    assert f"torch: 0.0.1 here, {library_versions()['torch']} on the cluster" in text
    assert f"onnx: absent here, {library_versions()['onnx']} on the cluster" in text
    assert not list((tmp_path / "run" / "candidates").iterdir())  # refused before any work


def test_cli_latency_on_the_cluster(cluster, samples, tmp_path):
    run = tmp_path / "run"
    got = run_cli("sweep", samples["torch_model"], "--data", samples["dataset"], "--target", "onnx", "--quant",
                  "none", "--prune", "0", "--cluster", cluster.address, "--latency-on", "cluster",
                  "--latency-rounds", "3", "-o", str(run), "--json")
    assert got.returncode == 0, got.stderr
    row = json.loads(got.stdout.strip().splitlines()[-1])
    assert row["status"] == "ok" and row["latency_ms_median"] > 0 and row["built_on"]
    assert len(row["latency_round_medians_ms"]) == 3  # the node timed it with the sweep's latency options
    assert json.loads((run / "results.json").read_text())["cluster"]["latency_on"] == "cluster"
    refused = run_cli("sweep", samples["torch_model"], "--latency-on", "cluster", "-o", str(tmp_path / "x"))
    assert refused.returncode == 1 and "--latency-on cluster needs --cluster" in refused.stderr


@pytest.mark.parametrize("scheme, flag", [("", "--port"), ("ray://", "--ray-client-server-port")])
def test_an_address_where_nothing_listens_is_refused_at_once_in_one_line(tmp_path, scheme, flag):
    from studio.core.sweep.cluster.client import ClusterExecutor

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StudioError) as err:
        ClusterExecutor(ClusterOptions(f"{scheme}127.0.0.1:{port}"), tmp_path / "cluster.log")
    line = err.value.one_line()
    assert f"cannot connect to the Ray cluster at {scheme}127.0.0.1:{port}: nothing answers there" in line
    assert f"ray start --head {flag}={port}" in line and "\n" not in line
    assert not (tmp_path / "cluster.log").exists()  # refused before a driver process was started


def test_the_sweep_and_the_cli_start_without_importing_ray():
    code = ("import sys, studio.core.sweep.sweep, studio.core.app.project, studio.cli\n"
            "try:\n    studio.cli.main(['sweep', '--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in sys.modules if m == 'ray' or m.startswith('ray.')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


CRASH_TWICE = """
import json, os, sys, ray
from studio.core.sweep.cluster import driver
ray.init(address=sys.argv[1], log_to_driver=False)
attempts, outcome = sys.argv[2], sys.argv[3]

def build_candidate():  # dies with its worker on every attempt, as on a node that keeps failing
    with open(attempts, "a") as f:
        f.write("attempt\\n")
    os._exit(1)

task = ray.remote(**driver._candidate._default_options)(build_candidate)  # the options of Studio's candidate task
with open(outcome + ".part", "w") as f:  # a file, not stdout: Ray's own output cannot get in the way
    json.dump(driver.Driver._outcome("c7", task.remote()), f)
os.replace(outcome + ".part", outcome)
"""


def test_a_task_that_dies_again_after_its_retry_is_a_failed_candidate_with_the_reason(cluster, tmp_path):
    attempts, outcome = tmp_path / "attempts.txt", tmp_path / "outcome.json"
    done = subprocess.run([sys.executable, "-c", CRASH_TWICE, cluster.address, str(attempts), str(outcome)],
                          capture_output=True, text=True, timeout=300)
    said = f"exit {done.returncode}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-3000:]}"
    assert done.returncode == 0 and outcome.is_file(), said
    kind, rid, reason = json.loads(outcome.read_text())
    assert attempts.read_text().count("attempt") == 2  # Ray ran it once more, then gave up
    assert (kind, rid) == ("lost", "c7") and "died on two nodes or workers (retried once)" in reason
    # the client raises it as a JobCrashed, which the sweep records as a failed candidate with this reason
    from studio.core.base.errors import JobCrashed
    assert issubclass(JobCrashed, StudioError) and reason in JobCrashed(reason).one_line()
