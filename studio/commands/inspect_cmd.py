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
    add_shape_argument(p)
    p.set_defaults(run=run)


def add_shape_argument(p) -> None:
    p.add_argument("--input-shape", type=shape_entry, action="append", metavar="[NAME=]1,3,224,224",
                   help="the shape an input runs at: resolves dynamic dims (repeat NAME=... for several inputs)")


def shape_entry(text: str) -> str:
    """One --input-shape value, checked now so a typo is one line before anything loads."""
    import argparse

    from studio.core.tensors.shapes import ShapeError, ShapeRequest

    try:
        ShapeRequest.parse([text])
    except ShapeError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def shapes_of(args):
    from studio.core.tensors.shapes import ShapeRequest

    return ShapeRequest.parse(args.input_shape or [])


def run(args) -> int:
    from studio.core.inspect.inspector import inspect_model
    from studio.core.inspect.modelinfo import summary_lines

    info = inspect_model(args.model, arch=args.arch, trust_pickle=args.trust_pickle,
                         input_shape=shapes_of(args).single)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print("\n".join(summary_lines(info)))
    return 0
