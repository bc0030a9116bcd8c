#!/usr/bin/env bash
# Run the whole test suite from a fresh clone: unit tests under Pulumi's mocks, then the deployments on a
# real Docker engine (tests/integration).
#
# 1. creates .venv and installs the pinned packages (requirements-dev.txt);
# 2. as root, makes sure a Docker engine answers (scripts/docker-engine.sh installs and starts one) and
#    builds the registry-free test images (cached: seconds when nothing changed), the real ArgusAI
#    backend among them, from the release checkout ARGUSAI_SOURCE (default: ../shared/argusai beside
#    this checkout, when it is there), the real frontend too (as published, and built for one origin);
#    and installs what the browser tests drive (scripts/test-tools.sh: Debian's chromium), and starts
#    building the pulumi CLI the state tests run (scripts/pulumi-cli.sh, from its Go module, in the
#    background at the lowest priority; its log in $TMPDIR/argusai-pulumi-cli.log);
# 3. runs pytest: the whole suite on TEST_WORKERS workers (default 2), then alone the tests marked
#    `exclusive`; with arguments, `pytest` with those alone. Without an engine the integration tests are
#    skipped with one line, unless REQUIRE_DOCKER=1, which makes a missing engine a failure (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
# Parallel pytest workers for the whole suite.
TEST_WORKERS="${TEST_WORKERS:-2}"

if [ -z "${ARGUSAI_SOURCE:-}" ] && [ -d ../shared/argusai/backend ]; then
    ARGUSAI_SOURCE="$(cd ../shared/argusai && pwd)"
fi
export ARGUSAI_SOURCE="${ARGUSAI_SOURCE:-}"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

if [ "$(id -u)" -eq 0 ] || docker info >/dev/null 2>&1; then
    if bash scripts/docker-engine.sh; then
        images=(--only postgres --only postgres17 --only backend --only frontend --only caddy --only pebble)
        if [ -n "${ARGUSAI_SOURCE}" ]; then
            images+=(--only argusai-backend --only argusai-frontend --only argusai-frontend-same-origin)
        elif [ "${REQUIRE_DOCKER:-0}" = "1" ]; then
            echo "test: REQUIRE_DOCKER=1 but ARGUSAI_SOURCE is unset and ../shared/argusai is missing" >&2
            exit 1
        fi
        # The browser's packages come from the host's apt while the images build (their own apt, in a
        # separate root), and the pulumi CLI from its Go module: side by side.
        bash scripts/test-tools.sh &
        tools=$!
        # The CLI is needed by one test late in the run: built at the lowest priority beside everything else
        # (the images first), and waited for by that test (testkit/cli.py).
        nice -n 19 bash scripts/pulumi-cli.sh >"${TMPDIR:-/tmp}/argusai-pulumi-cli.log" 2>&1 &
        .venv/bin/python -m testkit.images.build "${images[@]}"
        if ! wait "$tools" && [ "${REQUIRE_DOCKER:-0}" = "1" ]; then
            echo "test: REQUIRE_DOCKER=1 but the browser tests' tools could not be installed" >&2
            exit 1
        fi
    elif [ "${REQUIRE_DOCKER:-0}" = "1" ]; then
        echo "test: REQUIRE_DOCKER=1 but no Docker engine could be started" >&2
        exit 1
    fi
fi

if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
# The whole suite: two workers (pytest-xdist), since a real-engine test mostly waits (health, migrations,
# certificates) and two deployments side by side keep both cores busy; `--dist loadfile` keeps a file's
# tests, and its module fixtures, on one worker. Then, alone, the tests that need the whole engine (they
# restart it). Both parts always run; the status is the first failure's.
status=0
.venv/bin/python -m pytest -n "${TEST_WORKERS}" --dist loadfile --durations=40 -m "not exclusive" || status=$?
.venv/bin/python -m pytest -m exclusive || { [ "${status}" -ne 0 ] || status=$?; }
exit "${status}"
