"""`studio inspect MODEL [--json]`: what a model file holds, or why it cannot be opened."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="show what a model holds: inputs, outputs, parameters, operators, problems",
                       description="Inspect an ONNX, TFLite, PyTorch (.pt2, TorchScript, state_dict) or Keras"
                                   " (.keras, .h5, SavedModel) model.")
    p.add_argument("model", help="model file or SavedModel directory")
    p.add_argument("--json", action="store_true", help="print one JSON object (see docs/inspect-json.md)")
    p.add_argument("--arch", help="architecture for a state_dict file (a torchvision name, or studio.mnist_cnn)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow a pickled whole module (unpickling runs code from the file: only for files you trust)")
    p.add_argument("--input-shape", type=parse_shape, help="input shape such as 1,3,224,224 (TorchScript, modules)")
    p.set_defaults(run=run)


def parse_shape(text: str) -> tuple[int, ...]:
    import argparse

    try:
        dims = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a shape like 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"'{text}' is not a shape like 1,3,224,224")
    return dims


def run(args) -> int:
    from studio.core.inspect.inspector import inspect_model
    from studio.core.inspect.modelinfo import summary_lines

    info = inspect_model(args.model, arch=args.arch, trust_pickle=args.trust_pickle, input_shape=args.input_shape)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print("\n".join(summary_lines(info)))
    return 0
