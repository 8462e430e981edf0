"""`studio demo`: the offline demo on the sample model and data (no hardware, no internet)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="open the window on the sample MNIST model, dataset and a local demo device")
    p.add_argument("--terminal", action="store_true", help="no window: prepare the samples and inspect one")
    p.set_defaults(run=run)


def run(args) -> int:
    if not args.terminal:
        from studio.gui.app import run as run_window

        return run_window(demo=True)
    from studio.commands.progressbar import ProgressBar
    from studio.core.inspector import inspect_model
    from studio.core.modelinfo import summary_lines
    from studio.core.samples import ensure_samples

    print("Studio demo: preparing the sample MNIST dataset and models (first run trains them, about a minute)")
    with ProgressBar() as bar:
        info = ensure_samples(report=bar)
    print(f"PyTorch sample: {info['torch_accuracy']:.1f}% on {info['dataset']}")
    print(f"Keras sample:   {info['keras_accuracy']:.1f}%")
    print("\n".join(summary_lines(inspect_model(info["torch_model"]))))
    return 0
