"""`studio demo`: the offline demo on the sample model and data (no hardware, no internet). It opens the window;
without a display (or with --terminal) it runs the same Load -> Sweep -> Export -> Deploy -> Monitor pass in the
terminal."""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="open the window on the sample MNIST model, dataset and a local demo device")
    p.add_argument("--terminal", action="store_true", help="no window: run the whole pass in the terminal")
    p.set_defaults(run=run)


def run(args) -> int:
    if not args.terminal:
        from studio.gui.app import NoDisplay, check_display

        try:
            check_display()
        except NoDisplay:
            print("studio demo: no display, so the demo runs in the terminal (open a desktop session for the"
                  " window)", file=sys.stderr)
        else:
            from studio.gui.app import run as run_window

            return run_window(demo=True)
    return run_terminal()


def run_terminal() -> int:
    import dataclasses

    from studio.commands.progressbar import ProgressBar
    from studio.commands.sweep_cmd import print_table
    from studio.core.app import work
    from studio.core.app.demo import demo_project
    from studio.core.app.project import ChosenCandidate, ExportedBundle, PushOutcome, default_path
    from studio.core.base.paths import data_dir
    from studio.core.sweep.run_folder import RunFolder
    from studio.core.sweep.sweep import SweepOptions

    print("1. Load: the sample MNIST model and data (the first run trains them, about a minute)")
    with ProgressBar() as bar:
        info = work.demo_setup(report=bar)
    project = demo_project(info)
    model, sweep = project.model.path or "", project.sweep
    print(f"   PyTorch sample {info['torch_model']}: {info['torch_accuracy']:.1f}% on {info['dataset']}")
    options = SweepOptions(sensitivity=False)
    run_dir = work.sweep_dir(model, sweep.grid, sweep.dataset, options, tag="terminal demo")
    print(f"2. Sweep: {len(sweep.grid.candidates())} candidates, each converted, run and timed for real")
    with ProgressBar() as bar:
        doc = work.sweep(model, sweep.grid, sweep.dataset, str(run_dir), options, report=bar)
    print_table(doc, str(run_dir))
    chosen = doc["best"]
    out = str(data_dir() / "bundles" / "mnist-demo-1.0.0.bundle.zip")
    print(f"3. Export: {chosen} -> {out}")
    res = work.export(str(RunFolder(run_dir).candidate(chosen)), out, name="mnist-demo", version="1.0.0",
                      labels=info["labels"], sign_key=None, dataset=sweep.dataset)
    print(f"   verified: {res['files']} files, {res['manifest']['id']}")
    print("4. Deploy: push to the local demo device (a folder that behaves like a board)")
    result = work.push(out, ["demo"])
    for r in result.results:
        print(f"   {r.device}: {r.message}")
    print("5. Monitor: check the demo device against the bundle's promise (STUDIO_DEMO_DELAY_MS=5 makes it slow)")
    for c in work.check(["demo"]) if result.ok else []:
        print(f"   {c.device}: {c.verdict.value}, {c.reason}")
    project.chosen = ChosenCandidate(run_dir=str(run_dir), candidate=chosen)
    project.bundle = ExportedBundle(path=out, id=res["manifest"]["id"], verified=True)
    project.deploy = dataclasses.replace(project.deploy, last=tuple(PushOutcome.of(r) for r in result.results))
    project.save(default_path())
    print(f"Done. The session is saved in {default_path()}: `studio gui` opens it in the window.")
    return 0 if result.ok else 1
