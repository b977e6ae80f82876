"""How soon the UI draws its first loss points after Run on a landscape preset (issue 12).

What it measures
    A real `psgd-playground serve` on 127.0.0.1 (default settings, a fresh data folder) and
    headless Chromium driven by Python playwright. Each round opens /ui/ in a new page,
    picks the preset, clicks Run, and times inside the page, on the page's own clock, from
    the click to the first moment the loss figure (#loss-plot) holds a data point (a trace
    of its plotly figure with at least one x); then it waits until the comparison has ended,
    so that rounds do not overlap. A first warm-up round is not counted (a fresh server's
    warm worker may still be importing torch when the page is ready). What that includes:
    the UI's Run handler (it POSTs the comparison), the job's start on a warm worker, the
    UI's event follower and its ticks, Gradio's transport and plotly drawing. Two stages on
    the way are read from the server afterwards (same machine, same clock): when the
    comparison was stored and when its first job started, both counted from the click; a
    third in the page: when plotly was handed the loss figure with its first point (what
    follows is the page drawing it, and whatever else changed in the same answer).

Target (issue 12): the UI shows the first points within a second of Run on landscapes.

How to run
    .venv/bin/python benchmarks/ui_first_points.py             # 5 rounds
    Flags: --rounds N (default 5)  --warmup N (uncounted rounds first, default 1)
    --preset NAME (a landscape preset; default the Rosenbrock one)  --timeout S (per round,
    default 60)  --out DIR (default benchmarks/results/ui_first_points/<time>/, git-ignored)
    Needs playwright and /usr/bin/chromium (never `playwright install`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.chromium import CHROMIUM, LAUNCH_ARGS  # noqa: E402
from benchmarks.local_server import LocalServer  # noqa: E402
from playground.presets import PRESETS  # noqa: E402

LANDSCAPES = ("rosenbrock", "quadratic", "saddle")
DEFAULT_PRESET = "Rosenbrock: PSGD vs Adam vs L-BFGS"

#: the loss figure's data points (0 before any run); the page's figure is plotly's div
POINTS_JS = """() => {
    const figure = document.querySelector('#loss-plot .js-plotly-plot');
    if (!figure || !figure.data) return 0;
    return figure.data.reduce((n, trace) => n + (trace.x || []).length, 0);
}"""
#: from the click on Run (seen in the capture phase, before the UI's own handler) to the
#: first point, on the page's clock; checked every 10 ms, so it is the moment the page is
#: free again after drawing it. `window.lossHandedAfter`: when plotly was handed the loss
#: figure with its first point (the page then draws it and any other changed figure)
WATCH_JS = f"""() => {{
    const points = {POINTS_JS};
    window.firstPointsAfter = null;
    window.lossHandedAfter = null;
    let clicked = null;
    const react = window.Plotly.react;
    window.Plotly.react = function (div, data, ...rest) {{
        const count = (data || []).reduce((n, trace) => n + (trace.x || []).length, 0);
        if (clicked !== null && window.lossHandedAfter === null && count > 0
                && div.closest && div.closest('#loss-plot')) {{
            window.lossHandedAfter = (performance.now() - clicked) / 1000;
        }}
        return react.call(this, div, data, ...rest);
    }};
    document.addEventListener('click', (event) => {{
        if (clicked === null && event.target.closest('#run')) {{
            clicked = performance.now();
            window.runClickedAt = Date.now() / 1000;
        }}
    }}, true);
    const timer = setInterval(() => {{
        if (clicked !== null && points() > 0) {{
            window.firstPointsAfter = (performance.now() - clicked) / 1000;
            clearInterval(timer);
        }}
    }}, 10);
}}"""
#: the schema forms' render generation (a class of #form-task): it changes on a new preset
GENERATION_JS = """() => {
    const form = document.querySelector('#form-task');
    return form && [...form.classList].find((name) => name.startsWith('form-generation-'));
}"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds (default 1)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="a landscape preset's name")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per round")
    parser.add_argument("--out", type=Path, help="results folder")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    if args.timeout <= 0:
        parser.error("--timeout must be more than 0")
    landscapes = [name for name, p in PRESETS.items() if p["task"]["name"] in LANDSCAPES]
    if args.preset not in landscapes:
        parser.error(
            f"--preset: {args.preset!r} is not a landscape preset; choose from {landscapes}"
        )
    if args.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.out = ROOT / "benchmarks" / "results" / "ui_first_points" / stamp
    return args


def percentile(samples: list[float], q: float) -> float:
    """The nearest-rank q-quantile (0 < q ≤ 1): a measured value, never an interpolation."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def one_round(browser: Any, server: LocalServer, preset: str, timeout: float) -> dict[str, float]:
    """Seconds from Run to the first loss point, for one fresh page, and to the stages on
    the way (the server's clock is this machine's: the comparison stored, a job started)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(f"{server.url}/ui/")
        page.wait_for_selector("#form-task", timeout=timeout * 1000)
        before = page.evaluate(GENERATION_JS)
        page.locator("#preset input").click()
        page.get_by_role("option", name=preset).first.click()
        page.wait_for_function(
            f"(before) => {{ const now = ({GENERATION_JS})(); return now && now !== before; }}",
            arg=before,
            timeout=timeout * 1000,
        )
        if page.evaluate(POINTS_JS):
            raise RuntimeError("the loss figure had points before Run (a comparison running?)")
        page.evaluate(WATCH_JS)
        page.click("#run")
        page.wait_for_function("() => window.firstPointsAfter !== null", timeout=timeout * 1000)
        seconds, handed, clicked_at = page.evaluate(
            "() => [window.firstPointsAfter, window.lossHandedAfter, window.runClickedAt]"
        )
    finally:
        page.close()
    wait_until_idle(server, timeout)
    comparison = server.client.get("/api/comparisons", params={"limit": 1}).json()["items"][0]
    jobs = [server.client.get(f"/api/jobs/{job_id}").json() for job_id in comparison["job_ids"]]
    started = min(job["started"] for job in jobs if job["started"] is not None)
    return {
        "first_points": float(seconds),
        "comparison_stored": comparison["created"] - clicked_at,
        "first_job_started": started - clicked_at,
        "loss_handed_to_plotly": math.nan if handed is None else float(handed),
    }


def wait_until_idle(server: LocalServer, timeout: float) -> None:
    """Until no job is queued or running: the next round starts on an idle server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = server.client.get("/api/health").json()
        if not health["queued"] and not health["running"]:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the comparison did not end within {timeout:g} s")


def measure(args: argparse.Namespace) -> list[float]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("ui_first_points: needs playwright (pip install playwright; no browser download)")
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"ui_first_points: needs Chromium at {CHROMIUM} (apt-get install chromium)")
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="psgd-ui-first-") as folder, sync_playwright() as p:
        server = LocalServer(Path(folder))
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            for index in range(args.warmup):
                stages = one_round(browser, server, args.preset, args.timeout)
                print(f"warm-up {index + 1}: {_describe(stages)} (not counted)", flush=True)
            for index in range(args.rounds):
                samples.append(one_round(browser, server, args.preset, args.timeout))
                print(f"round {index + 1}: {_describe(samples[-1])}", flush=True)
        finally:
            browser.close()
            server.stop()
    return samples


def _describe(stages: dict[str, float]) -> str:
    return (
        f"first points {stages['first_points']:.3f} s after Run (comparison stored at "
        f"{stages['comparison_stored']:.3f} s, first job started at "
        f"{stages['first_job_started']:.3f} s, loss figure handed to plotly at "
        f"{stages['loss_handed_to_plotly']:.3f} s)"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_before = os.getloadavg()
    rounds = measure(args)
    samples = [stages["first_points"] for stages in rounds]
    result = {
        "preset": args.preset,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "seconds": samples,
        "stages": rounds,
        "stages_p50": {key: percentile([r[key] for r in rounds], 0.5) for key in rounds[0]},
        "p50": percentile(samples, 0.5),
        "p90": percentile(samples, 0.9),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    load_after = result["load_average"]["after"][0]
    print(
        f"first loss points after Run ({args.preset}, {args.rounds} rounds): "
        f"p50 {result['p50']:.3f} s, p90 {result['p90']:.3f} s "
        f"(load average {load_before[0]:.1f} before, {load_after:.1f} after); p50 of the "
        f"stages: {_describe(result['stages_p50'])}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ui_first_points.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
