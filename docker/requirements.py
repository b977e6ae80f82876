"""Print the project's requirements from pyproject.toml, one per line, for `pip install -r`.

    python docker/requirements.py pyproject.toml server ui > requirements.txt

The dependencies of `[project]` plus those of the named extras, in file order, without
duplicates. The Docker images install these in a layer of their own before the source is
copied (so a source change does not reinstall them); docker/smoke.sh downloads the same
list as wheels. Needs Python ≥ 3.11 (tomllib).
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The `[project]` dependencies and those of `extras`; KeyError names an unknown extra."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise KeyError(f"unknown extra(s) {', '.join(unknown)}; pyproject has {sorted(optional)}")
    found = list(project.get("dependencies", []))
    for extra in extras:
        found += optional[extra]
    return list(dict.fromkeys(found))


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: requirements.py PYPROJECT [EXTRA ...]", file=sys.stderr)
        return 2
    try:
        lines = requirements(Path(argv[0]), argv[1:])
    except (OSError, KeyError) as e:
        print(f"requirements.py: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
