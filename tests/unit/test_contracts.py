"""Each contract defined in one place (docs/design.md): what a reader can grep for.

- every `VIGIE_*` variable is read by one call of the settings readers
  (pipeline/settings.py `env_*`), never through `os.environ` directly;
- the import graph goes one way: the CLI (pipeline/cli) above agents/, above the rest of
  pipeline/, above models/, which imports nothing of the project; every import of the
  project's own modules is a plain import statement that the graph shows (no importlib);
- topic names are spelled in pipeline/topics.py only; everything else uses its constants.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "agents", "models")


def sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_each_setting_variable_is_read_in_one_place() -> None:
    reads: Counter[str] = Counter()
    where: dict[str, list[str]] = {}
    for path, text in sources().items():
        for name in re.findall(r"\benv_[a-z_]+\(\s*\"(VIGIE_[A-Z0-9_]+)\"", text):
            reads[name] += 1
            where.setdefault(name, []).append(path)
    assert len(reads) > 50, "the readers were not found: the check would see nothing"
    twice = {name: where[name] for name, count in reads.items() if count > 1}
    assert not twice, f"read in more than one place: {twice}"


def test_no_setting_variable_is_read_from_the_environment_directly() -> None:
    direct = [
        f"{path}: {line.strip()}"
        for path, text in sources().items()
        for line in text.splitlines()
        if re.search(r"os\.(environ|getenv)\b.*\"VIGIE_", line)
    ]
    assert not direct


def imports_of(path: str, text: str) -> list[str]:
    """Every module a file imports, at the top or inside functions, as absolute names."""
    package = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    names = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's own package
                base = package.rsplit(".", node.level - (path.endswith("__init__.py")))[0]
                names.append(f"{base}.{node.module}" if node.module else base)
            else:
                names.append(node.module or "")
    return names


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_import_graph_goes_one_way_cli_agents_pipeline_models() -> None:
    wrong = []
    for path, text in sources().items():
        module = path.removesuffix(".py").replace("/", ".")
        for imported in imports_of(path, text):
            if within(module, "models") and (within(imported, "pipeline")
                                             or within(imported, "agents")):
                wrong.append(f"{path} imports {imported} (models/ imports nothing of ours)")
            if within(module, "pipeline") and not within(module, "pipeline.cli") and (
                    within(imported, "agents") or within(imported, "pipeline.cli")):
                wrong.append(f"{path} imports {imported} (only the CLI sits above agents/)")
            if within(module, "agents") and within(imported, "pipeline.cli"):
                wrong.append(f"{path} imports {imported} (the CLI sits above agents/)")
    assert not wrong, "\n".join(wrong)


def test_the_cli_reaches_the_worker_by_a_plain_import() -> None:
    cli = {path: text for path, text in sources().items() if path.startswith("pipeline/cli/")}
    assert any("agents.worker" in imports_of(path, text) for path, text in cli.items())


def test_no_module_of_ours_is_imported_by_name_at_run_time() -> None:
    dynamic = []
    for path, text in sources().items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call):
                called = ast.unparse(node.func)
                if called.endswith("import_module") or called == "__import__":
                    dynamic.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    assert not dynamic, "\n".join(dynamic)


def test_topic_names_are_spelled_only_where_they_are_declared() -> None:
    from pipeline.topics import ALL_TOPICS

    files = [path for package in ("pipeline", "agents", "bench") for path in
             (ROOT / package).rglob("*.py")]
    # Test helpers too (the tests themselves may spell what they check).
    files += [path for path in (ROOT / "tests").rglob("*.py") if not path.name.startswith("test_")]
    spelled = []
    for path in files:
        if path == ROOT / "pipeline" / "topics.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in ALL_TOPICS:
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not spelled, "\n".join(spelled)
