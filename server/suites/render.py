"""A suite's report record (report.json's content) as Markdown, for report.md and the UI."""

from __future__ import annotations

from typing import Any


def report_markdown(record: dict[str, Any], figures: bool = True) -> str:
    """Title, claim, verdict with its finding, where and how it ran, tables, figures (as
    links to `<name>.svg` beside the report, unless `figures` is false) and notes."""
    report, m = record["report"], record.get("machine") or {}
    # the CPUs always: a run on a GPU machine can run its jobs on the CPU (`--device cpu`)
    device = f"{m.get('cpus')} × {m.get('cpu')}" + (
        f" with an {m['cuda']}" if m.get("cuda") else ""
    )
    lines = [
        f"# {record['title']} ({record['mode']} mode)",
        "",
        f"**Claim.** {record['claim']}",
        "",
        f"**Verdict: {report['verdict']}.** {report['finding']}",
        "",
        f"Run {record.get('date')} in {record.get('wall_seconds')} s on {device} "
        f"(torch {m.get('torch')}, Python {m.get('python')}, commit {m.get('git_commit')}):",
        "",
        f"    {record.get('command')}",
        "",
    ]
    for table in report.get("tables", []):
        lines += table_markdown(table)
    if figures:
        lines += [line for f in report.get("figures", []) for line in (_figure_link(f), "")]
    if report.get("notes"):
        lines += ["## Notes", "", *(f"- {note}" for note in report["notes"]), ""]
    return "\n".join(lines)


def table_markdown(table: dict[str, Any]) -> list[str]:
    def row(cells: list[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [
        f"## {table['title']}",
        "",
        row(table["columns"]),
        row(["---"] * len(table["columns"])),
        *(row(r) for r in table["rows"]),
        "",
    ]


def _figure_link(figure: dict[str, Any]) -> str:
    return f"![{figure['title']}]({figure['name']}.svg)"
