"""A suite's report record (report.json's content) as Markdown, for report.md and the UI."""

from __future__ import annotations

from typing import Any


def report_markdown(record: dict[str, Any], figures: bool = True) -> str:
    """Title, claim, verdict with its finding, where and how it ran, tables, figures (as
    links to `<name>.svg` beside the report, unless `figures` is false) and notes."""
    report = record["report"]
    lines = [
        f"# {record['title']} ({record['mode']} mode)",
        "",
        f"**Claim.** {record['claim']}",
        "",
        f"**Verdict: {report['verdict']}.** {report['finding']}",
        "",
        *_provenance(record),
    ]
    for table in report.get("tables", []):
        lines += table_markdown(table)
    if figures:
        lines += [line for f in report.get("figures", []) for line in (_figure_link(f), "")]
    if report.get("notes"):
        lines += ["## Notes", "", *(f"- {note}" for note in report["notes"]), ""]
    return "\n".join(lines)


def _provenance(record: dict[str, Any]) -> list[str]:
    """Where and how the runs were made; for a report of kept runs analysed again, when and
    with which code it was analysed, then each source's run."""
    if "sources" not in record:
        return [f"Run {_where(record)}:", "", f"    {record.get('command')}", ""]
    commit = (record.get("machine") or {}).get("git_commit")
    lines = [
        f"Analysed {record.get('date')} (commit {commit}) from the runs kept with "
        f"{len(record['sources'])} report(s):",
        "",
        f"    {record.get('command')}",
        "",
    ]
    for source in record["sources"]:
        lines.append(f"- {source.get('report')}: run {_where(source)}: `{source.get('command')}`")
    return [*lines, ""]


def _where(record: dict[str, Any]) -> str:
    m = record.get("machine") or {}
    # the CPUs always: a run on a GPU machine can run its jobs on the CPU (`--device cpu`)
    device = f"{m.get('cpus')} × {m.get('cpu')}" + (
        f" with an {m['cuda']}" if m.get("cuda") else ""
    )
    return (
        f"{record.get('date')} in {record.get('wall_seconds')} s on {device} "
        f"(torch {m.get('torch')}, Python {m.get('python')}, commit {m.get('git_commit')})"
    )


def markdown_row(cells: list[Any]) -> str:
    """A Markdown table row; a "|" inside a cell (|H|⁻¹ in a claim) would split it."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def table_markdown(table: dict[str, Any]) -> list[str]:
    return [
        f"## {table['title']}",
        "",
        markdown_row(table["columns"]),
        markdown_row(["---"] * len(table["columns"])),
        *(markdown_row(r) for r in table["rows"]),
        "",
    ]


def _figure_link(figure: dict[str, Any]) -> str:
    return f"![{figure['title']}]({figure['name']}.svg)"
