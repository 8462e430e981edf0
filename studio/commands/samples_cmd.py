"""`studio samples [--json]`: make (once) and list the sample MNIST dataset and models."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("samples", help="make the sample MNIST dataset and trained models (cached after the first run)")
    p.add_argument("--json", action="store_true", help="print paths and accuracies as one JSON object")
    p.add_argument("--rebuild", action="store_true", help="make them again even if cached")
    p.set_defaults(run=run)


def run(args) -> int:
    from studio.commands.progressbar import ProgressBar
    from studio.core.app.samples import ensure_samples

    with ProgressBar(enabled=not args.json) as bar:
        info = ensure_samples(report=bar, rebuild=args.rebuild)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dataset        {info['dataset']}  (validation, {info['dataset_source']})")
    print(f"train dataset  {info['train_dataset']}")
    print(f"labels         {info['labels']}")
    print(f"torch model    {info['torch_model']}  validation accuracy {info['torch_accuracy']:.1f}%")
    print(f"  state_dict   {info['torch_state_dict']}  (--arch {info['torch_arch']})")
    print(f"keras model    {info['keras_model']}  validation accuracy {info['keras_accuracy']:.1f}%")
    return 0
