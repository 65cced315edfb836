"""Architecture rules: the engine never imports Qt; importing the GUI never imports torch or diffusers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_qt():
    offenders = []
    for path in sorted((APP / "engine").rglob("*.py")):
        qt = {m for m in _imported_modules(path) if m in {"PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph"}}
        if qt:
            offenders.append(f"{path.relative_to(APP.parent)}: {sorted(qt)}")
    assert offenders == [], "app/engine must stay free of Qt: " + "; ".join(offenders)


def test_engine_rule_is_checked_on_real_files():
    # Guard against the scan above silently finding nothing (a renamed folder would make it pass vacuously).
    assert len(list((APP / "engine").rglob("*.py"))) >= 5


def test_importing_gui_loads_neither_torch_nor_diffusers():
    code = (
        "import sys, app.gui, app.gui.main; "
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"app.gui imported heavy modules at load: {out.stdout.strip()}"


def test_cli_help_is_light():
    code = (
        "import sys; from app.cli import build_parser; build_parser(); "
        "print(','.join(m for m in ('torch', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _engine_imports(path: Path) -> set[str]:
    """Every app.engine module a file imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("app.engine"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "app.engine":
            found.update(f"app.engine.{a.name}" for a in node.names)  # from app.engine import facade
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("app.engine"):
            found.add(node.module)
    return found


def test_gui_reaches_the_engine_only_through_the_facade():
    offenders = []
    for path in sorted((APP / "gui").rglob("*.py")):
        other = {m for m in _engine_imports(path) if m != "app.engine.facade"}
        if other:
            offenders.append(f"{path.relative_to(APP.parent)}: {sorted(other)}")
    assert offenders == [], "app/gui may import app.engine.facade only: " + "; ".join(offenders)


def test_facade_rule_sees_the_gui_files_that_use_the_engine():
    users = [p for p in (APP / "gui").rglob("*.py") if "app.engine.facade" in _engine_imports(p)]
    assert len(users) >= 3


def _top_level_imports(path: Path) -> set[str]:
    """The top-level package of every absolute import in a file, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_shipped_package_never_imports_the_unshipped_folders():
    # pyproject.toml ships app* only: an import of tools/ (the demo builders), scripts/, bench/ or tests/ from app/
    # would work in a checkout and fail in an installed wheel.
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        bad = _top_level_imports(path) & {"tools", "scripts", "bench", "tests"}
        if bad:
            offenders.append(f"{path.relative_to(APP.parent)}: {sorted(bad)}")
    assert offenders == [], "app/ must not import unshipped folders: " + "; ".join(offenders)
    assert any("tools" in _top_level_imports(p) for p in (APP.parent / "tests").glob("test_demo_*.py"))  # rule is live


def test_wheel_ships_app_only():
    import tomllib

    config = tomllib.loads((APP.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["app*"]


def test_models_and_shared_services_stand_alone():
    # The bottom of the engine: base models and the small services (file format, hashes, atomic writes, paths,
    # events, errors) are used by train/generate/adapters/shelf and must not reach back up into them.
    engine = APP / "engine"
    bottom = [*sorted((engine / "models").rglob("*.py"))]
    bottom += [engine / f"{m}.py" for m in ("safetensors_file", "hashcache", "rate", "atomic", "paths", "errors")]
    upper = ("app.engine.adapters", "app.engine.shelf", "app.engine.train", "app.engine.generate", "app.engine.facade")
    offenders = []
    for path in bottom:
        bad = {m for m in _engine_imports(path) if m.startswith(upper)}
        if bad:
            offenders.append(f"{path.relative_to(APP.parent)}: {sorted(bad)}")
    assert len(bottom) >= 10 and offenders == [], "; ".join(offenders)
