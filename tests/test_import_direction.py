"""The layering rule of docs/architecture.md, read from the source: no shared layer imports ``clarifylab.methods``,
and no method package imports another method's package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clarifylab"


def imported_modules(path: Path, package: str) -> set[str]:
    """Every absolute module name that ``path`` (a module of the dotted ``package``) imports, module level or inside
    functions; relative imports are resolved against ``package``."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            modules.add(module)
            modules.update(f"{module}.{alias.name}" for alias in node.names)
    return modules


def violations(root: Path) -> list[str]:
    """``"<file>: <module>"`` for each import that breaks the rule under the package tree ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        own_method = parts[1] if parts[0] == "methods" and len(parts) > 2 else None
        package = ".".join(("clarifylab",) + parts[:-1])
        for module in sorted(imported_modules(path, package)):
            if module != "clarifylab.methods" and not module.startswith("clarifylab.methods."):
                continue
            target = module.split(".")[2] if module != "clarifylab.methods" else None
            if parts[0] != "methods":
                found.append(f"{path.relative_to(root)}: {module} (a shared layer imports a method)")
            elif own_method is not None and target not in (None, own_method):
                found.append(f"{path.relative_to(root)}: {module} (a method imports another method)")
    return found


def test_shared_layers_never_import_methods():
    assert violations(SRC) == []


@pytest.mark.parametrize("source, offending", [
    ("from clarifylab.methods.act.replacer import ACTReplacer\n", "training/bad.py"),
    ("import clarifylab.methods.irpo.pairs\n", "evaluation/bad.py"),
    ("def f():\n    from clarifylab.methods.act import recipe\n", "data/bad.py"),
    ("from clarifylab import methods\n", "env/bad.py"),
    ("from ..methods.act import replacer\n", "metrics/bad.py"),
    ("from ...irpo import pairs\n", "methods/act/sub/bad.py"),
    ("from clarifylab.methods.act.pairs import build_act_pairs\n", "methods/irpo/bad.py"),
])
def test_the_check_catches_a_shared_module_that_imports_a_method(tmp_path, source, offending):
    target = tmp_path / offending
    target.parent.mkdir(parents=True)
    target.write_text(source)
    (tmp_path / "methods" / "act").mkdir(parents=True, exist_ok=True)
    (tmp_path / "methods" / "act" / "ok.py").write_text("from clarifylab.methods.act.pairs import x\n"
                                                        "from clarifylab.training.dpo_recipe import run_dpo\n")
    assert {v.split(":")[0] for v in violations(tmp_path)} == {offending}
