"""The /api/suites routes: the seed paper's claims, their committed evidence, and a way to
start a suite's quick mode as ordinary comparisons (issue 16).

Reports are read from the suites' results folder (`server.suites.results`); starting a
suite submits its plan through the job service, so the jobs obey the same token, limits
and quotas as any comparison and stream like one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import Response

from server.api import schemas
from server.api.routes import BODY, INVALID, QUEUE_FULL, Service, mutating_options
from server.errors import Conflict, NotFound
from server.jsonable import json_safe
from server.settings import Settings
from server.strict import StrictModel
from server.suites import SUITES, suite_named
from server.suites.base import Suite
from server.suites.results import (
    SHOWN_MODES,
    figure_svg,
    partial_records,
    report_record,
    results_folder,
)


def _error(description: str) -> dict[str, Any]:
    return {"model": schemas.ErrorResponse, "description": description}


NOT_FOUND = {404: _error("no such suite, or no report of it by that name")}
#: a report: a mode (quick, full) or a partial report's name from the suite's listing
ReportName = Annotated[
    str,
    Path(
        description="quick, full, or one of the suite's `partial_reports` (a trimmed run)",
        examples=["quick", "full-partial"],
    ),
]
NOT_JOBS = {409: _error("the suite's measurement is not jobs (run benchmarks/suite.py)")}
SVG = {200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}}}


class SuiteRun(StrictModel):
    """Which plan to submit: smoke (seconds) or quick (minutes on a CPU). Full mode is for
    `benchmarks/suite.py --full` on a machine sized for it, not for a shared server."""

    mode: Literal["smoke", "quick"] = "quick"


def build_suite_router(settings: Settings) -> APIRouter:
    mutating = mutating_options(settings)
    folder = results_folder(settings.suite_results_dir)
    router = APIRouter(prefix="/api/suites", tags=["suites"])

    def described(suite: Suite) -> dict[str, Any]:
        reports = {}
        for mode in SHOWN_MODES:
            record = report_record(folder, suite.name, mode)
            reports[mode] = None if record is None else _headline(record)
        partial = [
            {"name": report, **_headline(record)}
            for report, record in partial_records(folder, suite.name).items()
        ]
        return {
            "name": suite.name,
            "title": suite.title,
            "claim": suite.claim,
            "description": suite.description,
            "runs_jobs": suite.runs_jobs,
            "reports": reports,
            "partial_reports": partial,
        }

    @router.get("", summary="The suites: each claim and the verdict of its committed reports")
    def list_suites() -> list[dict[str, Any]]:
        return json_safe([described(suite) for suite in SUITES.values()])

    @router.get(
        "/{name}/reports/{report}",
        summary="A suite's report (a mode's, or a partial one): verdict, finding, tables, "
        "figures, machine, command",
        responses={**NOT_FOUND, **INVALID},
    )
    def get_report(name: str, report: ReportName) -> dict[str, Any]:
        record = report_record(folder, _suite(name).name, report)
        if record is None:
            raise NotFound(f"suite {name!r} has no report {report!r}")
        return json_safe(record)

    @router.get(
        "/{name}/reports/{report}/figures/{figure}.svg",
        response_class=Response,
        summary="One figure of a report, as SVG",
        responses={**SVG, **NOT_FOUND, **INVALID},
    )
    def get_figure(name: str, report: ReportName, figure: str) -> Response:
        svg = figure_svg(folder, _suite(name).name, report, figure)
        if svg is None:
            raise NotFound(f"the report {report!r} of {name!r} has no figure {figure!r}")
        return Response(svg, media_type="image/svg+xml")

    @router.post(
        "/{name}/runs",
        status_code=201,
        summary="Start a suite's smoke or quick plan as comparisons (watch them like any)",
        **mutating(a=BODY, b=INVALID, c=QUEUE_FULL, d=NOT_FOUND, e=NOT_JOBS),
    )
    def start_suite(name: str, run: SuiteRun, service: Service) -> dict[str, Any]:
        suite = _suite(name)
        if suite.plan is None:
            raise Conflict(
                f"suite {name!r} times the optimizers outside jobs: run "
                f"`python benchmarks/suite.py {name} --{run.mode}` on the machine to measure"
            )
        plan = suite.plan(run.mode)
        for _, spec in plan:  # every comparison passes the server's checks before any starts
            service.validate_comparison(spec)
        started: list[dict[str, Any]] = []
        try:
            for title, spec in plan:
                comparison = service.create_comparison(spec)
                started.append(
                    {"title": title, "id": comparison["id"], "job_ids": comparison["job_ids"]}
                )
        except Exception:
            for comparison in started:  # all or nothing: no half a suite left running
                service.delete_comparison(comparison["id"])
            raise
        return json_safe({"suite": name, "mode": run.mode, "comparisons": started})

    return router


def _suite(name: str) -> Suite:
    try:
        return suite_named(name)
    except KeyError as e:
        raise NotFound(e.args[0]) from None


def _headline(record: dict[str, Any]) -> dict[str, Any]:
    report = record["report"]
    # a report analysed from kept runs: the devices its runs were made on, not its own
    made_on = [_device(source) for source in record.get("sources") or [record]]
    return {
        "verdict": report.get("verdict"),
        "finding": report.get("finding"),
        "date": record.get("date"),
        "command": record.get("command"),
        "device": "; ".join(dict.fromkeys(made_on)),
    }


def _device(record: dict[str, Any]) -> str:
    machine = record.get("machine") or {}
    return machine.get("cuda") or f"{machine.get('cpus')} CPUs"
