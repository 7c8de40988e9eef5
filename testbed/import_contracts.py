"""An import-linter contract for a script outside the packages: `app.py` may import only `asr` itself.

import-linter builds its graph from packages, and the page is a single file (Streamlit runs a script), so
this contract reads the script's imports with `ast` instead: every import of a first-party package must
name the package alone (``import asr``), never one of its modules (``from asr.jobs import ...``,
``from asr import jobs``, ``import asr.jobs``). Registered in pyproject.toml under ``contract_types``.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import cast

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


class ScriptImportsContract(Contract):
    """Options: ``script`` (a path from the repository root) and ``packages`` (what it may import only whole)."""

    type_name = "script_imports"

    script = fields.StringField()
    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        tree = ast.parse(Path(cast(str, self.script)).read_text(encoding="utf-8"))
        packages = set(cast(list[str], self.packages))
        found = [f"line {line}: {name}" for line, name in _first_party_imports(tree, packages) if name not in packages]
        return ContractCheck(kept=not found, metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error(
            f"{self.script} imports modules of {', '.join(cast(list[str], self.packages))} instead of the package:"
        )
        output.new_line()
        for line in check.metadata["found"]:
            output.indent_cursor()
            output.print_error(line, bold=False)
        output.new_line()


def _first_party_imports(tree: ast.Module, packages: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every import of one of `packages` or of a module inside them."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] in packages]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in packages:
                continue
            if node.module in packages:  # `from asr import x`: x is a name, or a module of the package
                found += [
                    (
                        node.lineno,
                        f"{node.module}.{alias.name}" if _is_module(f"{node.module}.{alias.name}") else node.module,
                    )
                    for alias in node.names
                ]
            else:
                found.append((node.lineno, node.module))
    return found


def _is_module(name: str) -> bool:
    """Whether `name` (e.g. "asr.jobs") is a module rather than a name defined in its package."""
    return importlib.util.find_spec(name) is not None
