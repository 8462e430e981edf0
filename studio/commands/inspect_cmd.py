"""`studio inspect MODEL [--json]`: what a model file holds, or why it cannot be opened."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="show what a model holds: inputs, outputs, parameters, operators, problems",
                       description="Inspect an ONNX, TFLite, PyTorch (.pt2, TorchScript, state_dict) or Keras"
                                   " (.keras, .h5, SavedModel) model.")
    p.add_argument("model", help="model file or SavedModel directory")
    p.add_argument("--json", action="store_true", help="print one JSON object (see docs/inspect-json.md)")
    add_model_options(p)
    add_shape_argument(p)
    p.set_defaults(run=run)


def add_model_options(p) -> None:
    """How to open a PyTorch file: the architecture of a state_dict, its arguments, and consent to run code."""
    from studio.core.inspect.arch_spec import TRUST_CODE_TEXT

    p.add_argument("--arch", metavar="ARCH", help="architecture for a state_dict file: a torchvision name (resnet18),"
                                                 " studio.mnist_cnn, or your own class as path/to/file.py:ClassName"
                                                 " or package.module:ClassName (needs --trust-code)")
    p.add_argument("--arch-args", metavar="JSON", help="keyword arguments for --arch as a JSON object, e.g."
                                                        " '{\"num_classes\": 10}'")
    p.add_argument("--trust-code", action="store_true",
                   help=f"allow running your own code: --arch FILE.py:Class, --metric FILE.py:FN ({TRUST_CODE_TEXT})")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow a pickled whole module (unpickling runs code from the file: only for files you trust)")


def arch_spec(args):
    """The ArchSpec the --arch options give (None without --arch); ModelLoadError when they do not fit."""
    from studio.core.base.errors import ModelLoadError
    from studio.core.inspect.arch_spec import ArchSpec

    if not args.arch:
        if args.arch_args:
            raise ModelLoadError("--arch-args needs --arch: the arguments are for the architecture's class")
        return None
    return ArchSpec.of(args.arch, args.arch_args, args.trust_code)


def add_shape_argument(p) -> None:
    p.add_argument("--input-shape", type=shape_entry, action="append", metavar="[NAME=]1,3,224,224[:DTYPE]",
                   help="the shape an input runs at: resolves dynamic dims (repeat NAME=... for several inputs; a"
                        " PyTorch module needs one per input, with :int64 for an integer input)")


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

    info = inspect_model(args.model, arch=arch_spec(args), trust_pickle=args.trust_pickle,
                         shapes=shapes_of(args))
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print("\n".join(summary_lines(info)))
    return 0
