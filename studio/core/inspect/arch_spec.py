"""How the user names the architecture a state_dict belongs to (no torch here: every options object carries it)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.base.errors import ModelLoadError

TRUST_CODE_TEXT = ("building your own architecture runs its Python code: allow it only for code you trust, as"
                   " with pickled modules")


@dataclass(frozen=True)
class ArchSpec:
    """The architecture a state_dict's weights belong to: a name or `FILE.py:Class` / `package.module:Class`, its
    keyword arguments (canonical JSON text, so the spec is hashable and a run records it as it was given), and
    whether the user allowed its code to run."""
    name: str
    args: str = ""  # a JSON object of keyword arguments; "" for none
    trust_code: bool = False

    @classmethod
    def of(cls, name: str, args: str | None = None, trust_code: bool = False) -> ArchSpec:
        """The spec with `args` checked and made canonical (ModelLoadError when they are not a JSON object) and a
        .py file named by its absolute path, so that workers, resumes and other folders find the same file."""
        where, colon, class_name = name.strip().rpartition(":")
        if colon and is_file_path(where):
            name = f"{os.path.abspath(os.path.expanduser(where))}:{class_name}"
        return cls(name.strip(), canonical_args(args), trust_code)

    @property
    def user_code(self) -> bool:
        """Whether building it imports the user's code (anything with a ':' between module and class)."""
        return ":" in self.name

    def kwargs(self) -> dict[str, Any]:
        return json.loads(self.args) if self.args else {}

    def record(self) -> str | dict[str, Any]:
        """What a run records: the plain name as before when there are no arguments (consent is not recorded: a
        re-run asks for it again)."""
        return {"name": self.name, "args": self.kwargs()} if self.args else self.name


def is_file_path(where: str) -> bool:
    """Whether the module part of an --arch names a .py file (else it is a dotted module name)."""
    return where.endswith(".py") or "/" in where or "\\" in where


def canonical_args(text: str | None) -> str:
    if not text or not text.strip():
        return ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"--arch-args is not valid JSON ({exc.msg} at character {exc.pos}): give keyword"
                             " arguments like '{\"num_classes\": 10}'") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"--arch-args must be a JSON object of keyword arguments like '{{\"num_classes\": 10}}',"
                             f" not a {type(value).__name__}")
    return json.dumps(value, sort_keys=True) if value else ""


def classes_in(path: str) -> list[str]:
    """The names of the classes a .py file defines at its top level, read without running it (for choosing one)."""
    import ast

    try:
        tree = ast.parse(Path(path).read_bytes(), filename=path)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ModelLoadError(f"cannot be read as Python source ({exc})", path) from None
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
