"""`python -m psgd.demo`: equal work budgets, counted work, an early stop at the target."""

from __future__ import annotations

import re

import pytest
import torch

from psgd import demo

ROW = re.compile(r"^  (\S.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\S+)")


def _rows(text: str) -> list[tuple[str, int, int, int, float]]:
    rows = []
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            name, steps, grads, hvps, _, f = match.groups()
            rows.append((name, int(steps), int(grads), int(hvps), float(f)))
    return rows


@pytest.fixture
def keep_threads():
    """main() sets torch's thread count for the process; later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_demo_spends_equal_budgets_and_counts_gradients_and_hvps(capsys, keep_threads):
    demo.main(["--budget", "40"])
    out = capsys.readouterr().out
    assert "2-D Rosenbrock" in out and "100-D Rosenbrock" in out
    rows = _rows(out)
    assert len(rows) == 6
    for (name, steps, grads, hvps, f), budget in zip(rows, [20] * 3 + [40] * 3):
        assert budget <= grads + hvps <= budget + 25, name  # L-BFGS may finish a line search
        assert f > 0
        if name.startswith("psgd.Dense"):
            assert grads == hvps == steps  # Newton fitting: one gradient and one Hvp per step
        elif name.startswith("torch Adam"):
            assert grads == steps and hvps == 0


def test_race_stops_once_the_target_is_reached():
    lbfgs = demo.LBFGS(torch.tensor([-1.5, 2.0], requires_grad=True))
    f = demo.race(lbfgs, budget=2000)
    assert f <= demo.TARGET
    assert 0 < lbfgs.tally.grads < 200  # stopped long before the budget
    assert lbfgs.tally.steps == lbfgs.iterations() > 0


@pytest.mark.parametrize("argv", [["--budget", "5"], ["--threads", "0"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err
