"""The delayed-XOR benchmark script: seed parsing, preset use, a tiny end-to-end run."""

from __future__ import annotations

import pytest
from benchmark_scripts import load_benchmark

from server.optimizers import TASK_PRESETS


@pytest.fixture(scope="module")
def xor_delay():
    return load_benchmark("xor_delay")


def test_parse_seeds_lists_and_ranges(xor_delay):
    assert xor_delay.parse_seeds("0,3,5-7") == [0, 3, 5, 6, 7]
    assert xor_delay.parse_seeds(" 2 ") == [2]
    for bad in ("", "1-x", "a", "1,1", "3-1", "0,3-1", "-1"):
        with pytest.raises(ValueError):
            xor_delay.parse_seeds(bad)


def test_lra_settings_are_the_registry_preset_with_overrides(xor_delay):
    preset = TASK_PRESETS["xor"]["psgd-lra"]
    assert xor_delay.lra_settings({"lr": None}) == preset
    changed = xor_delay.lra_settings({"preconditioner_lr": 0.1})
    assert changed == {**preset, "preconditioner_lr": 0.1}


def test_tiny_run_reports_a_summary(xor_delay, capsys):
    xor_delay.main(["--T", "8", "--seeds", "0-1", "--steps", "4", "--log-every", "2"])
    out = capsys.readouterr().out
    assert "psgd.LRA settings" in out and "'preconditioner_init_scale': 1.0" in out
    assert "seed 1 step      4" in out and out.rstrip().endswith("solved 0/2")


def test_bad_flags_exit_with_a_message(xor_delay, capsys):
    with pytest.raises(SystemExit) as exit_info:
        xor_delay.main(["--seeds", "1-x"])
    assert exit_info.value.code == 2
    assert "--seeds" in capsys.readouterr().err
