"""The installed package's version, for the API, the CLI's `--version` and the UI."""

from __future__ import annotations


def package_version() -> str:
    """psgd-playground's version as installed, or "unknown" when run from a bare checkout."""
    try:
        from importlib.metadata import version

        return version("psgd-playground")
    except Exception:
        return "unknown"
