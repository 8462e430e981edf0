"""`make screenshots`: render the real window on the demo data (offscreen) and save one PNG per page.

    python -m studio.gui.screenshots OUT_DIR [--theme light|dark]

Drives the demo as a user would: demo set-up, sweep, pick the best candidate, profile and diff an ONNX int8 one,
export, push to the demo device, check it a few times (the last ones with the demo device slowed down by
STUDIO_DEMO_DELAY_MS), flash mode. A second run reuses the measured sweep (same settings, same run folder)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def wait_for(app, condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.gui.screenshots")
    parser.add_argument("out")
    parser.add_argument("--theme", choices=["light", "dark"], default="light")
    args = parser.parse_args(argv)
    os.environ["STUDIO_THEME"] = args.theme
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio.gui.app import application, open_window

    app, _ = application()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w = open_window(demo=True)
    w.resize(1360, 860)
    w.show()

    def shot(name: str, widget=None) -> None:
        app.processEvents()
        path = out / f"{args.theme}-{name}.png"
        (widget or w).grab().save(str(path))
        print(path)

    tour(app, w, shot)
    w.close()
    return 0


def tour(app, w, shot) -> None:
    """Every page in the order a user meets them, with a shot of each."""
    def idle():
        return w.task is None

    wait_for(app, lambda: idle() and w.load.info is not None, 600, "the demo set-up")
    w.go(0)
    shot("1-load")
    w.go(1)
    shot("2-optimize")
    w.run_sweep()
    wait_for(app, lambda: len(w.preview.candidates) >= 2, 600, "the first candidates")
    shot("3-preview-live")
    wait_for(app, idle, 900, "the sweep")
    best = w.preview.summary.text().split("<b>")[-1].split("</b>")[0]
    best = best if best in w.preview.candidates else next(iter(w.preview.candidates))
    w.preview.select(best)
    wait_for(app, lambda: True, 1, "")
    shot("3-preview")
    look_inside(app, w, shot)
    w.preview.select(best)
    w.go(3)
    w.run_export()
    wait_for(app, idle, 300, "the export")
    shot("4-export")
    w.go(4)
    w.push(w.deploy.checked())
    wait_for(app, idle, 300, "the push and the demo device's first check")
    wait_for(app, lambda: w.tasks.idle, 60, "the device status")
    shot("5-deploy")
    w.go(5)
    monitor_checks(app, w)
    shot("6-monitor")
    w.open_flash()
    f = w.flash_window
    wait_for(app, lambda: f.bundle is not None and f.tasks.idle, 60, "the bundle check")
    f.start_flash()
    wait_for(app, lambda: f.tasks.idle, 300, "the flash")
    shot("7-flash", f)


def look_inside(app, w, shot) -> None:
    """The ONNX candidate that agrees least with the source (both profile and diff read ONNX; the demo's is pruned
    and int8, so the diff has channel changes, Q/DQ and disagreeing samples to show): its time per operator and its
    Diff tab."""
    ok = [r for r in w.preview.candidates.values() if r.ok and r.id.startswith("onnx-")]
    if not ok:
        raise SystemExit("screenshots: the demo sweep has no ONNX candidate to profile and diff")
    cid = min(ok, key=lambda r: r.agreement if r.agreement is not None else 100.0).id
    w.preview.select(cid)
    for run in (w.profile_candidate, w.diff_candidate):
        run(cid)
        wait_for(app, lambda: w.task is None, 300, f"{run.__name__} of {cid}")
    if w.preview.diff.result is None or w.preview.profile.report is None:
        raise SystemExit(f"screenshots: profiling or diffing {cid} failed: {w.preview.banner.text()}")
    w.preview.tabs.setCurrentWidget(w.preview.diff)
    shot("3-preview-diff")
    w.preview.tabs.setCurrentIndex(0)


def monitor_checks(app, w, delay_ms: str = "5") -> None:
    """Two more checks of the demo device as it is, then two with it slowed down: a `slower` spell on the chart."""
    for slow in (False, False, True, True):
        if slow:
            os.environ["STUDIO_DEMO_DELAY_MS"] = delay_ms
        w.check_devices(["demo"])
        wait_for(app, lambda: w.tasks.idle, 300, "the check")
    os.environ.pop("STUDIO_DEMO_DELAY_MS", None)


if __name__ == "__main__":
    sys.exit(main())
