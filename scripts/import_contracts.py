"""An import-linter contract type for imports of a compiled extension module.

import-linter's graph (grimp) is built from ``.py`` files, so a compiled
extension such as ``llamanative._core`` is not in it: ``from .. import _core``
shows up as an import of the parent package, and ``from .._core import X``
not at all. The built-in ``forbidden`` contract therefore cannot name it.
This contract reads the source of every module in ``source_modules`` (and
their descendants) and fails on any import statement that resolves to
``native_module`` or a name inside it.

Registered in pyproject.toml under ``[tool.importlinter] contract_types``;
``lint-imports`` puts the working directory on ``sys.path``, which makes
this file importable as ``scripts.import_contracts`` from the repository root.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.helpers import module_expressions_to_modules


def _source_file(module: str) -> tuple[Path, bool] | None:
    """The file of ``module`` and whether it is a package (its ``__init__.py``), or None (not Python source)."""
    root, _, rest = module.partition(".")
    spec = importlib.util.find_spec(root)
    if spec is None or not spec.submodule_search_locations:
        return None
    # An editable install may list more than one directory (the source tree, the built extension's).
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*(rest.split(".") if rest else []))
        if (path / "__init__.py").is_file():
            return path / "__init__.py", True
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py"), False
    return None


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of everything ``module``'s import statements bring in."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            out.append((node.lineno, base))
    return out


class NativeModuleContract(Contract):
    """``source_modules`` (and their descendants) do not import ``native_module``, directly.

    Configuration options:
        - source_modules: modules (or expressions) whose source is read.
        - native_module: the extension module's full name.
    """

    type_name = "native_module"

    source_modules = fields.SetField(subfield=fields.ModuleExpressionField())
    native_module = fields.StringField()

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        native: str = self.native_module  # type: ignore[assignment]
        roots = module_expressions_to_modules(graph, self.source_modules)  # type: ignore[arg-type]
        modules: set[str] = set()
        for root in roots:
            if root.name not in graph.modules:
                raise ValueError(f"Module '{root.name}' does not exist.")
            modules |= {root.name} | graph.find_descendants(root.name)
        violations: dict[tuple[str, int], str] = {}
        for module in sorted(modules):
            found = _source_file(module)
            if found is None:
                continue
            path, is_package = found
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for line, name in _imported_names(tree, module, is_package):
                if name == native or name.startswith(native + "."):
                    violations.setdefault((module, line), name)
        return ContractCheck(
            kept=not violations,
            metadata={"violations": [{"importer": m, "line": n, "imported": i} for (m, n), i in violations.items()]},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for v in check.metadata["violations"]:
            output.print_error(f"- {v['importer']} -> {v['imported']} (l.{v['line']})", bold=False)
            output.new_line()
