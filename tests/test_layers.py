"""Layers point one way (docs/ARCHITECTURE.md): checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mixdown

PACKAGE = Path(mixdown.__file__).parent

FRONT_ENDS = ("mixdown.cli", "mixdown.commands", "mixdown.__main__")
"""Modules that parse arguments and print; nothing else may import them."""

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "mixdown.dsp": ("mixdown.console", "mixdown.mixers", "mixdown.models", "mixdown.data", "mixdown.synth",
                    "mixdown.api", "mixdown.web", *FRONT_ENDS),
    "mixdown.params": ("mixdown.console", "mixdown.mixers", "mixdown.models", "mixdown.api", *FRONT_ENDS),
    "mixdown.console": ("mixdown.mixers", "mixdown.models", "mixdown.data", "mixdown.synth", "mixdown.api",
                        *FRONT_ENDS),
    "mixdown.data": ("mixdown.mixers", "mixdown.models", "mixdown.api", "mixdown.web", *FRONT_ENDS),
    "mixdown.synth": ("mixdown.mixers", "mixdown.models", "mixdown.api", "mixdown.web", *FRONT_ENDS),
    "mixdown.class_rules": ("mixdown.mixers", "mixdown.models", "mixdown.data", "mixdown.synth", *FRONT_ENDS),
    "mixdown.models": ("mixdown.mixers", "mixdown.api", "mixdown.web", *FRONT_ENDS),
    "mixdown.mixers": ("mixdown.api", "mixdown.web", "mixdown.evaluate", "mixdown.listening", *FRONT_ENDS),
    "mixdown": FRONT_ENDS,
}
"""Per package (longest prefix wins): the modules it must not import, at any depth of its code."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _rule(module: str) -> tuple[str, ...]:
    owner = max((prefix for prefix in FORBIDDEN if module == prefix or module.startswith(prefix + ".")), key=len)
    return FORBIDDEN[owner]


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if not _module_name(p).startswith(FRONT_ENDS))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_imports_a_layer_above_it(path):
    module = _module_name(path)
    bad = sorted(name for name in _imports(path)
                 if any(name == above or name.startswith(above + ".") for above in _rule(module)))
    assert not bad, f"{module} imports {bad}"


def test_the_check_sees_a_violation(tmp_path):
    """The parser finds imports inside functions too (lazy imports are imports all the same)."""
    source = tmp_path / "example.py"
    source.write_text("def f():\n    from mixdown.cli import err\n    import mixdown.commands.train\n")
    assert {"mixdown.cli", "mixdown.cli.err", "mixdown.commands.train"} <= _imports(source)
