"""The manual keeps up with the code: every setting, every flag and every module is named.

Each test reads the code's own lists (config.DEFAULTS, cli.parse_args's add_argument calls,
the files under keepalive/) and the text the operator reads (README_MONITOR.md, .env.example,
keepalive/__init__.py's docstring), so a setting, flag or module added without its line fails
here naming it, and so does a line left behind for one that is gone.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import keepalive
from keepalive.config import DEFAULTS
from keepalive.targets import TARGET_KEYS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README_MONITOR.md"
PACKAGE = ROOT / "keepalive"
# Read by config.read_environment from the environment only (it says which file to read).
NOT_IN_DEFAULTS = {"MONITOR_ENV_FILE"}
MAP_LINE = re.compile(r"^    ([a-z_]+/|(?:[a-z_]+/)?[a-z_0-9]+\.py)\s", re.MULTILINE)


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next level-2 heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def first_cells(text: str) -> list[str]:
    """The first cell of every table row, header and separator rows left out."""
    cells = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells.append(line.split("|")[1])
    return cells[1:] if cells else cells


def readme_settings() -> set[str]:
    names: set[str] = set()
    for cell in first_cells(section(README.read_text(), "Settings")):
        names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", cell))
    return names


def env_example_settings() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def readme_target_keys() -> set[str]:
    """Keys named in the first column of the targets-file tables."""
    text = README.read_text()
    keys: set[str] = set()
    for heading in ("Many targets: the targets file", "More than /health: kinds of check"):
        for cell in first_cells(section(text, heading)):
            keys.update(re.findall(r"`([a-z_]+)", cell))
    return keys


def cli_flags() -> set[str]:
    """Every option parse_args declares (argparse adds --help itself)."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    parse_args = next(
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "parse_args"
    )
    flags = set()
    for node in ast.walk(parse_args):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("--"):
                    flags.add(str(arg.value))
    return flags


def tree_modules() -> set[str]:
    """What ``find keepalive -name '*.py'`` lists, relative to keepalive/; a package by its
    directory (``engine/``), the top-level __init__.py being the map itself."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "__init__.py":
            continue
        names.add(relative.removesuffix("__init__.py"))
    return names


def named_modules(text: str) -> set[str]:
    return set(MAP_LINE.findall(text))


def readme_module_map() -> str:
    development = section(README.read_text(), "Development")
    return development.split("```text\n", 1)[1].split("```", 1)[0]


def test_every_setting_is_in_the_readme_settings_table() -> None:
    missing = sorted(set(DEFAULTS) - readme_settings())
    assert missing == [], f"settings missing from README_MONITOR.md's Settings tables: {missing}"


def test_the_readme_settings_table_names_no_setting_that_is_gone() -> None:
    unknown = sorted(readme_settings() - set(DEFAULTS) - NOT_IN_DEFAULTS)
    assert unknown == [], f"README_MONITOR.md's Settings tables name settings the code lacks: {unknown}"


def test_every_setting_is_in_env_example() -> None:
    missing = sorted(set(DEFAULTS) - env_example_settings())
    assert missing == [], f"settings missing from .env.example: {missing}"


def test_every_target_key_is_in_the_readme_targets_tables() -> None:
    missing = sorted(TARGET_KEYS - readme_target_keys())
    assert missing == [], f"targets-file keys missing from README_MONITOR.md's key tables: {missing}"


def test_every_flag_is_in_the_readme_command_line_table() -> None:
    flags = cli_flags()
    assert {"--once", "--check-config", "--version"} <= flags  # the parser was read at all
    rows = " ".join(first_cells(section(README.read_text(), "Command line and exit codes")))
    documented = set(re.findall(r"--[a-z][a-z-]*", rows))
    assert sorted(flags - documented) == [], "flags missing from README_MONITOR.md's command-line table"
    assert sorted(documented - flags - {"--help"}) == [], "the command-line table names flags cli.py lacks"


def test_the_package_docstring_names_every_module_and_no_other() -> None:
    doc = keepalive.__doc__ or ""
    named = named_modules(doc)
    tree = tree_modules()
    assert sorted(tree - named) == [], "modules missing from keepalive/__init__.py's docstring"
    assert sorted(named - tree) == [], "keepalive/__init__.py's docstring names modules that do not exist"


def test_the_readme_module_map_is_the_package_docstring_map() -> None:
    doc_map = sorted(named_modules(keepalive.__doc__ or ""))
    readme_map = sorted(named_modules(readme_module_map()))
    assert readme_map == doc_map


def test_the_map_reader_sees_a_missing_module() -> None:
    """The comparison above can fail: a map without one line lacks that module."""
    doc = keepalive.__doc__ or ""
    line = next(line for line in doc.splitlines() if line.startswith("    engine/scheduler.py"))
    assert "engine/scheduler.py" in tree_modules() - named_modules(doc.replace(line + "\n", ""))
