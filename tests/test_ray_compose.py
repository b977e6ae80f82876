"""The compose profile `ray` (docker/compose.yaml): a Ray head, workers, and a server
pointed at the head, without dashboard or usage statistics. Static checks: no engine here."""

from __future__ import annotations

from pathlib import Path

import yaml
from test_docker_files import FIXED_BY_IMAGE

from server.settings import ENV_PREFIX, Settings

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def _services() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]


def test_the_ray_profile_runs_a_head_workers_and_a_server_on_them() -> None:
    services = _services()
    head, worker, server = services["ray-head"], services["ray-worker"], services["playground-ray"]
    assert head["profiles"] == worker["profiles"] == server["profiles"] == ["ray"]
    # one image with the ray extra for all three
    assert head["build"]["args"]["EXTRAS"].split() == ["server", "ui", "ray"]
    assert head["image"] == worker["image"] == server["image"]
    [head_command], [worker_command] = head["command"], worker["command"]
    assert "ray start --head --block --port=6379" in head_command
    assert "--address=ray-head:6379" in worker_command
    for node, command in ((head, head_command), (worker, worker_command)):
        assert node["environment"]["RAY_USAGE_STATS_ENABLED"] == "0"
        assert "--disable-usage-stats" in command
        assert "type: local" in command and "ray_bootstrap_config.yaml" in command
    assert "--include-dashboard=false" in head_command
    script = server["entrypoint"][2]
    assert "PSGD_PLAYGROUND_EXECUTOR=ray" in script
    assert "ray-head:6379" in script and server["command"] == ["serve"]
    assert server["depends_on"] == ["ray-head"] and worker["depends_on"] == ["ray-head"]
    [port] = server["ports"]
    assert port.startswith("127.0.0.1:")


def test_the_ray_server_passes_every_setting_through() -> None:
    settable = {
        ENV_PREFIX + name.upper() for name in Settings.model_fields if name not in FIXED_BY_IMAGE
    }
    assert set(_services()["playground-ray"]["environment"]) == settable
