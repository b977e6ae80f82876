#!/usr/bin/env bash
# Smoke test of the CPU image (docker/Dockerfile), end to end:
#   build it with docker (when an engine answers) or podman, start it on a free loopback
#   port, check GET /api/health, the image's HEALTHCHECK, GET /ui/, the non-root user and
#   the database on the /data volume, submit a small job through the API and follow it to
#   `succeeded`, then stop the container (it must exit 0) and remove it with its volume.
#
#   bash docker/smoke.sh               # from anywhere; exits non-zero on the first failure
#
# Offline machines (no image registry, pip unreachable from inside a build, e.g. this
# project's CI machine with podman and no Docker engine). When the Dockerfile's base image
# is neither present nor pullable, the script (not the Dockerfile) works around it:
#   - a stand-in base image: `debootstrap` of Debian bookworm (minbase + python3, i.e. the
#     Python 3.11 of python:3.11-slim-bookworm), imported as localhost/psgd-smoke-base:bookworm
#     and passed as the BASE_IMAGE build argument;
#   - a wheels folder downloaded on the host with pip (the project's requirements for the
#     image's Python), mounted into the build (podman build -v) and used through the build
#     arguments PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels, with --network none;
#   - podman settings in a CONTAINERS_CONF file: runc and explicit ulimits (crun and the
#     default ulimits fail on that machine's cgroups). An existing CONTAINERS_CONF is kept.
# Needs: podman (+ runc) or docker, curl, python3 >= 3.11; offline also debootstrap and pip.
#   apt-get install -y podman runc debootstrap curl
#
# Environment:
#   SMOKE_CACHE    cache of the stand-in base and the wheels (default
#                  /var/tmp/psgd-playground-docker-smoke); reruns reuse it
#   SMOKE_OFFLINE  auto (default: offline when the base image cannot be pulled), 1 or 0
#   SMOKE_IMAGE    tag of the built image (default psgd-playground:smoke; kept afterwards so
#                  the next build reuses its layers)
#   SMOKE_ENGINE   docker or podman instead of detecting
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CACHE=${SMOKE_CACHE:-/var/tmp/psgd-playground-docker-smoke}
OFFLINE=${SMOKE_OFFLINE:-auto}
IMAGE=${SMOKE_IMAGE:-psgd-playground:smoke}
DOCKERFILE=docker/Dockerfile
STANDIN_BASE=localhost/psgd-smoke-base:bookworm
STANDIN_PYTHON=3.11 # the python3 of Debian bookworm
EXTRAS=(server ui)
NAME=psgd-smoke-$$
T0=$SECONDS

log() { echo "smoke [$((SECONDS - T0))s]: $*" >&2; }
die() {
    echo "smoke: FAILED: $*" >&2
    exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "needs '$1' ($2)"; }

# ----------------------------------------------------------------------------- engine
pick_engine() {
    if [ -n "${SMOKE_ENGINE:-}" ]; then
        ENGINE=$SMOKE_ENGINE
    elif command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
        ENGINE=docker
    elif command -v podman >/dev/null 2>&1; then
        ENGINE=podman
    else
        die "neither a Docker engine nor podman found (e.g. apt-get install -y podman runc)"
    fi
    need "$ENGINE" "the container engine"
    if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
        mkdir -p "$CACHE"
        export CONTAINERS_CONF=$CACHE/containers.conf
        {
            echo '[containers]'
            echo 'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]'
            if command -v runc >/dev/null 2>&1; then
                echo '[engine]'
                echo 'runtime = "runc"'
            fi
        } >"$CONTAINERS_CONF"
    fi
    log "engine: $ENGINE ($("$ENGINE" --version))${CONTAINERS_CONF:+, CONTAINERS_CONF=$CONTAINERS_CONF}"
}

# ------------------------------------------------------------------------- base image
# Sets BASE (the image to build on) and OFFLINE (1 or 0).
pick_base() {
    local wanted
    wanted=$(sed -n 's/^ARG BASE_IMAGE=//p' "$DOCKERFILE")
    [ -n "$wanted" ] || die "no 'ARG BASE_IMAGE=' default in $DOCKERFILE"
    if [ "$OFFLINE" != 1 ] && "$ENGINE" image inspect "$wanted" >/dev/null 2>&1; then
        BASE=$wanted
    elif [ "$OFFLINE" != 1 ] && log "pulling $wanted" &&
        timeout 300 "$ENGINE" pull "$wanted" >>"$ENGINE_LOG" 2>&1; then
        BASE=$wanted
    elif [ "$OFFLINE" = 0 ]; then
        die "cannot pull $wanted and SMOKE_OFFLINE=0"
    else
        local reason="SMOKE_OFFLINE=1"
        [ "$OFFLINE" = 1 ] || reason="$wanted cannot be pulled: $(tail -n 1 "$ENGINE_LOG" | cut -c1-100)"
        log "$reason; offline build on a stand-in base"
        OFFLINE=1
        standin_base
        BASE=$STANDIN_BASE
        return
    fi
    [ "$OFFLINE" = auto ] && OFFLINE=0
    log "base image: $BASE"
}

standin_base() {
    if "$ENGINE" image inspect "$STANDIN_BASE" >/dev/null 2>&1; then
        log "stand-in base: $STANDIN_BASE (cached)"
        return
    fi
    local tarball=$CACHE/base-bookworm.tar
    if [ ! -s "$tarball" ]; then
        need debootstrap "apt-get install -y debootstrap"
        [ "$(id -u)" -eq 0 ] || die "debootstrap of the stand-in base needs root"
        local mirror rootfs
        mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null |
            awk '{print $1; exit}')
        mirror=${mirror:-http://deb.debian.org/debian}
        rootfs=$CACHE/rootfs
        rm -rf "$rootfs"
        mkdir -p "$rootfs"
        log "debootstrap bookworm (minbase + python3) from $mirror"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
            die "debootstrap failed, see $CACHE/debootstrap.log"
        # What python:3.11-slim provides and the Dockerfile relies on: `python`.
        ln -sf python3 "$rootfs/usr/bin/python"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$rootfs"
    fi
    log "importing the stand-in base as $STANDIN_BASE"
    "$ENGINE" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$tarball" "$STANDIN_BASE" >/dev/null 2>>"$ENGINE_LOG"
}

# ----------------------------------------------------------------------------- wheels
# The image's requirements as wheels for its Python, downloaded on the host once per
# requirement list (a stamp file records the list).
download_wheels() {
    need python3 "the host's Python, >= 3.11"
    local torch wheels=$CACHE/wheels want
    torch=$(sed -n 's/^ARG TORCH_VERSION=//p' "$DOCKERFILE")
    [ -n "$torch" ] || die "no 'ARG TORCH_VERSION=' default in $DOCKERFILE"
    want=$({
        echo "python $STANDIN_PYTHON"
        python3 docker/requirements.py pyproject.toml "${EXTRAS[@]}"
        echo "torch==$torch"
        echo "setuptools>=64" # the project's build backend (pip install ./src)
        echo "wheel"
    })
    if [ -f "$wheels/.requirements" ] && [ "$(cat "$wheels/.requirements")" = "$want" ]; then
        log "wheels: $wheels (cached, $(find "$wheels" -name '*.whl' | wc -l) files)"
        WHEELS=$wheels
        return
    fi
    mkdir -p "$wheels"
    log "downloading wheels for Python $STANDIN_PYTHON into $wheels"
    # shellcheck disable=SC2046  # one requirement per line, none contains spaces
    python3 -m pip download --dest "$wheels" --only-binary=:all: \
        --python-version "$STANDIN_PYTHON" $(echo "$want" | tail -n +2) \
        >"$CACHE/pip-download.log" 2>&1 || {
        tail -n 20 "$CACHE/pip-download.log" >&2
        die "pip download failed (full log: $CACHE/pip-download.log)"
    }
    echo "$want" >"$wheels/.requirements"
    WHEELS=$wheels
}

# ------------------------------------------------------------------------------ build
build() {
    local args=(build -f "$DOCKERFILE" -t "$IMAGE" --build-arg "BASE_IMAGE=$BASE")
    if [ "$ENGINE" = podman ]; then
        # OCI images drop HEALTHCHECK; the docker format keeps it.
        args+=(--format docker --pull=never)
    fi
    if [ "$OFFLINE" = 1 ]; then
        [ "$ENGINE" = podman ] || die "offline builds need podman (build -v for the wheels)"
        download_wheels
        args+=(--network none -v "$WHEELS:/wheels:ro"
            --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels)
    fi
    log "$ENGINE ${args[*]} ."
    local start=$SECONDS
    "$ENGINE" "${args[@]}" . >"$CACHE/build.log" 2>&1 || {
        tail -n 40 "$CACHE/build.log" >&2
        die "image build failed (full log: $CACHE/build.log)"
    }
    log "built $IMAGE in $((SECONDS - start))s, $(image_size)"
}

image_size() {
    "$ENGINE" image inspect --format '{{.Size}}' "$IMAGE" |
        awk '{printf "%.0f MB", $1 / 1e6}'
}

# -------------------------------------------------------------------------- run/check
cleanup() {
    local rc=$?
    if "$ENGINE" container inspect "$NAME" >/dev/null 2>&1; then
        if [ "$rc" -ne 0 ]; then
            echo "smoke: engine messages:" >&2
            cat "$ENGINE_LOG" >&2
            echo "smoke: last container logs:" >&2
            "$ENGINE" logs --tail 40 "$NAME" >&2 || true
        fi
        "$ENGINE" rm -f -v "$NAME" >/dev/null 2>>"$ENGINE_LOG" || true
    fi
    exit "$rc"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# json FIELD: read a JSON object on stdin and print one top-level field.
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

running() { [ "$("$ENGINE" container inspect --format '{{.State.Running}}' "$NAME")" = true ]; }

wait_for_health() {
    local deadline=$((SECONDS + 180))
    until curl -fsS "$URL/api/health" >/dev/null 2>&1; do
        running || die "the container exited before answering /api/health"
        [ "$SECONDS" -lt "$deadline" ] || die "no answer from $URL/api/health within 180 s"
        sleep 1
    done
    log "GET /api/health: $(curl -fsS "$URL/api/health")"
}

check_healthcheck() {
    local config status deadline=$((SECONDS + 120))
    config=$("$ENGINE" image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
    case $config in
    *healthcheck.py*) log "image HEALTHCHECK: $config" ;;
    *) die "the image has no HEALTHCHECK (got '$config'; podman needs --format docker)" ;;
    esac
    if [ "$ENGINE" = podman ]; then
        # podman runs health checks from systemd timers, absent here: run one now.
        "$ENGINE" healthcheck run "$NAME" || die "podman healthcheck run: unhealthy"
    fi
    while :; do
        status=$("$ENGINE" container inspect --format '{{.State.Health.Status}}' "$NAME")
        [ "$status" = healthy ] && break
        [ "$SECONDS" -lt "$deadline" ] || die "health status '$status' after 120 s"
        sleep 2
    done
    log "container health status: $status"
}

check_ui() {
    local page
    page=$(curl -fsSL "$URL/ui/") || die "GET /ui/ failed"
    grep -qi gradio <<<"$page" || die "GET /ui/ answered without Gradio markup"
    log "GET /ui/: $(wc -c <<<"$page") bytes of Gradio page"
}

check_suites() {
    local verdicts
    verdicts=$(curl -fsS "$URL/api/suites" | python3 -c 'import json, sys
for suite in json.load(sys.stdin):
    quick = suite["reports"]["quick"] or {}
    print(suite["name"] + "=" + str(quick.get("verdict")))') || die "GET /api/suites failed"
    grep -q "^step-cost=not yet run at full scale$" <<<"$verdicts" ||
        die "the image carries no suite reports: $verdicts"
    log "GET /api/suites: the committed quick reports are in the image ($(tr '\n' ' ' <<<"$verdicts"))"
}

check_user_and_volume() {
    local uid
    uid=$("$ENGINE" exec "$NAME" id -u)
    [ "$uid" != 0 ] || die "the server runs as root"
    "$ENGINE" exec "$NAME" test -s /data/jobs.sqlite || die "no /data/jobs.sqlite in the container"
    log "server runs as uid $uid; job database at /data/jobs.sqlite"
}

run_job() {
    local body job id status deadline=$((SECONDS + 180))
    body='{"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam", "lr": 0.01}, "steps": 200, "seed": 0}'
    job=$(curl -fsS -X POST "$URL/api/jobs" -H 'Content-Type: application/json' -d "$body") ||
        die "POST /api/jobs failed"
    id=$(json id <<<"$job")
    log "submitted job $id (rosenbrock, adam, 200 steps)"
    while :; do
        job=$(curl -fsS "$URL/api/jobs/$id") || die "GET /api/jobs/$id failed"
        status=$(json status <<<"$job")
        case $status in
        succeeded) break ;;
        queued | running) ;;
        *) die "job $id ended $status: $job" ;;
        esac
        [ "$SECONDS" -lt "$deadline" ] || die "job $id still $status after 180 s"
        sleep 1
    done
    log "job $id succeeded: $(json summary <<<"$job")"
    local rows
    rows=$(curl -fsS "$URL/api/jobs/$id/metrics?format=csv" | wc -l)
    [ "$rows" -gt 200 ] || die "metrics of job $id have $rows lines, expected > 200"
    log "GET /api/jobs/$id/metrics: $rows CSV lines"
}

stop_container() {
    local start=$SECONDS code
    "$ENGINE" stop -t 20 "$NAME" >/dev/null 2>>"$ENGINE_LOG"
    code=$("$ENGINE" container inspect --format '{{.State.ExitCode}}' "$NAME")
    [ "$code" = 0 ] || die "the server exited with code $code on stop"
    "$ENGINE" rm -v "$NAME" >/dev/null 2>>"$ENGINE_LOG"
    log "stopped (exit code 0, $((SECONDS - start))s) and removed the container and its volume"
}

main() {
    need curl "apt-get install -y curl"
    mkdir -p "$CACHE"
    # podman without systemd logs errors about health-check timers on run/stop/rm: keep
    # the engine's stderr in a file, shown when something fails.
    ENGINE_LOG=$CACHE/engine.log
    : >"$ENGINE_LOG"
    pick_engine
    pick_base
    build
    PORT=$(free_port)
    URL=http://127.0.0.1:$PORT
    trap cleanup EXIT
    local start=$SECONDS
    "$ENGINE" run -d --name "$NAME" -p "127.0.0.1:$PORT:8000" "$IMAGE" >/dev/null \
        2>>"$ENGINE_LOG" || {
        cat "$ENGINE_LOG" >&2
        die "$ENGINE run failed"
    }
    log "started $NAME on $URL"
    wait_for_health
    log "server answered $((SECONDS - start))s after start"
    check_ui
    check_suites
    check_user_and_volume
    check_healthcheck
    run_job
    stop_container
    log "PASSED in $((SECONDS - T0))s"
}

main "$@"
