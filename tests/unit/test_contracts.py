"""Each contract defined in one place (docs/design.md): what a reader can grep for.

- every `VIGIE_*` variable is read by one call of the settings readers
  (pipeline/settings.py `env_*`), never through `os.environ` directly;
"""

from __future__ import annotations

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
