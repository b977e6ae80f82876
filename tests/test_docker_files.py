"""Static checks of docker/: the images, compose file and build context agree with the code.

The images themselves are built and run by docker/smoke.sh (a stage of .ci/run); these
checks catch drift between the Docker files and the project without an engine.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from fake_executor import FakeExecutor
from fastapi.testclient import TestClient

from server.api import create_app
from server.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = (DOCKER / "Dockerfile", DOCKER / "Dockerfile.cuda")
#: settings the images fix (ENV in the Dockerfiles) rather than pass through compose.
FIXED_BY_IMAGE = {"host", "port", "data_dir", "executor", "suite_results_dir"}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DOCKER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _instructions(dockerfile: Path) -> list[str]:
    """The file's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _arg_default(dockerfile: Path, name: str) -> str:
    for line in _instructions(dockerfile):
        if line.startswith(f"ARG {name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{dockerfile.name} has no ARG {name}=<default>")


def _env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _instructions(dockerfile):
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_pins_the_torch_of_constraints(dockerfile: Path) -> None:
    pins = re.findall(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pins == [_arg_default(dockerfile, "TORCH_VERSION")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_serves_the_exposed_port_on_all_interfaces_with_data_on_the_volume(
    dockerfile: Path,
) -> None:
    lines = _instructions(dockerfile)
    env = _env(dockerfile)
    assert env[ENV_PREFIX + "HOST"] == "0.0.0.0"
    assert f"EXPOSE {env[ENV_PREFIX + 'PORT']}" in lines
    assert f'VOLUME ["{env[ENV_PREFIX + "DATA_DIR"]}"]' in lines
    user = next(line.split()[1] for line in lines if line.startswith("USER "))
    assert user.split(":")[0] not in ("0", "root")
    assert lines[-2:] == ['ENTRYPOINT ["psgd-playground"]', 'CMD ["serve"]']
    healthcheck = next(line for line in lines if line.startswith("HEALTHCHECK "))
    assert "/opt/psgd-playground/healthcheck.py" in healthcheck


def test_cpu_and_cuda_images_differ_only_in_base_and_torch() -> None:
    # Everything from the dependency layer on (user, volume, settings, health check) is shared.
    cpu, cuda = (_instructions(path) for path in DOCKERFILES)
    start = "WORKDIR /opt/psgd-playground"
    assert cpu[cpu.index(start) :] == cuda[cuda.index(start) :]


def test_healthcheck_path_is_the_health_route(tmp_path: Path) -> None:
    healthcheck = _load("healthcheck")
    app = create_app(Settings(data_dir=tmp_path), executor=FakeExecutor())
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:  # as the check asks
        assert client.get(healthcheck.HEALTH_PATH).status_code == 200


def test_healthcheck_fails_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(ENV_PREFIX + "PORT", str(port))
    assert _load("healthcheck").main() == 1


def test_requirements_are_the_project_dependencies_and_extras() -> None:
    tomllib = pytest.importorskip("tomllib", reason="docker/requirements.py needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = _load("requirements")
    got = requirements.requirements(ROOT / "pyproject.toml", ["server", "ui"])
    extras = project["optional-dependencies"]
    assert got == project["dependencies"] + extras["server"] + extras["ui"]
    with pytest.raises(KeyError, match="gui"):
        requirements.requirements(ROOT / "pyproject.toml", ["gui"])


def test_dockerignore_admits_exactly_what_the_dockerfiles_copy() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied: set[str] = set()
    for dockerfile in DOCKERFILES:
        for line in _instructions(dockerfile):
            if line.startswith("COPY ") and "--from" not in line:
                copied.update(source.rstrip("/") for source in line.split()[1:-1])
    assert copied == allowed
    assert all((ROOT / source).exists() for source in copied)


def test_compose_builds_both_images_and_passes_every_setting_through() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    ray_profile = {"ray-head", "ray-worker", "playground-ray"}  # tests/test_ray_compose.py
    assert set(services) == {"playground", "playground-gpu", *ray_profile}
    settable = {
        ENV_PREFIX + name.upper() for name in Settings.model_fields if name not in FIXED_BY_IMAGE
    }
    for service, dockerfile in zip(
        (services["playground"], services["playground-gpu"]), DOCKERFILES
    ):
        build = service["build"]
        assert (DOCKER / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == dockerfile
        env = _env(dockerfile)
        [port] = service["ports"]
        assert port.startswith("127.0.0.1:")  # loopback unless the user changes it
        assert port.endswith(":" + env[ENV_PREFIX + "PORT"])
        [volume] = service["volumes"]
        assert volume.split(":")[1] == env[ENV_PREFIX + "DATA_DIR"]
        assert set(service["environment"]) == settable
    assert services["playground-gpu"]["profiles"] == ["gpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_keep_the_host_check_on_although_they_bind_every_interface(
    dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.api.guards import trusted_hosts

    for name, value in _env(dockerfile).items():
        if name.startswith(ENV_PREFIX):
            monkeypatch.setenv(name, value)
    hosts = trusted_hosts(Settings())
    assert hosts is not None, "bound to 0.0.0.0 without trusted_hosts, any Host is answered"
    assert {"127.0.0.1", "localhost", "::1"} <= hosts
    assert "evil.example" not in hosts
