"""pyproject.toml declares what Vigie imports, and nothing it does not."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = {"pipeline", "agents", "models", "tests"}
# Declared for what they do at run time without being imported by name.
RUNTIME_ONLY = {
    "cramjam": "aiokafka's lz4 codec (the Faust worker's producer compression)",
    "crc32c": "kafka-python's checksum of record batches, in C",
    "lz4": "kafka-python's lz4 codec (VIGIE_PRODUCER_COMPRESSION=lz4)",
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def names(requirements: list[str]) -> set[str]:
    return {normalise(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
            for requirement in requirements}


def declared(extras: bool) -> set[str]:
    """The distributions Vigie depends on, with its optional extras (build, test) or not:
    an extra may cover a module imported only where it is used (torch, the demo's SMTP)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    if extras:
        for group in project["optional-dependencies"].values():
            requirements += group
    return names(requirements)


def imported_modules() -> set[str]:
    modules = set()
    for package in ("pipeline", "agents", "models"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in OURS and m not in sys.stdlib_module_names}


def test_every_imported_package_is_declared_and_every_declared_one_is_used():
    owners = packages_distributions()
    used = set()
    for module in imported_modules():
        assert module in owners, f"{module} is imported but not installed"
        used |= {normalise(distribution) for distribution in owners[module]}
    missing = {module for module in imported_modules()
               if not {normalise(d) for d in owners[module]} & declared(extras=True)}
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
    unused = declared(extras=False) - used - set(RUNTIME_ONLY)
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"


def test_kafka_python_checksums_record_batches_in_c():
    """Without the crc32c package kafka-python falls back to a pure-Python CRC-32C of every
    record batch it writes or reads: the producer then spends 1.29x the CPU a post."""
    import crc32c
    from kafka.record import util

    assert util.calc_crc32c.__defaults__ == (crc32c.crc32c,)
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # the CRC-32C check value
