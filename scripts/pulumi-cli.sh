#!/usr/bin/env bash
# Build the `pulumi` CLI (the version the tests model, PULUMI_CLI_VERSION) from its Go module, for the tests
# that run the real CLI on a state (tests/integration/test_keys_out_of_ids.py). The CLI is the one part of
# Pulumi this machine's registries serve; its language host and providers are not, so `pulumi up` itself
# cannot run here. Idempotent: an existing build of that version is kept. Prints the binary's path last.
#
# The module's go.mod replaces the sdk module by `../sdk`, so `go install module@version` refuses it: both
# modules are downloaded through Go's own proxy settings and built side by side in a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly VERSION="${PULUMI_CLI_VERSION:-v3.276.0}"
readonly OUT_DIR=".tools/pulumi-${VERSION}"
readonly BIN="${OUT_DIR}/pulumi"
# A cold module download and build on 2 cores takes about 8 minutes.
readonly BUILD_TIMEOUT_SECONDS=1800

log() { printf 'pulumi-cli: %s\n' "$*" >&2; }

if [ -x "${BIN}" ]; then
    echo "${BIN}"
    exit 0
fi
command -v go >/dev/null 2>&1 || { log "no Go toolchain (go) on PATH"; exit 1; }
mkdir -p "${OUT_DIR}"
# While this file exists a build is under way (testkit/cli.py waits for it).
readonly BUILDING="${OUT_DIR}/building"
touch "${BUILDING}"
scratch="$(mktemp -d)"
trap 'chmod -R u+w "${scratch}" 2>/dev/null; rm -rf "${scratch}" "${BUILDING}"' EXIT
started=$(date +%s)
for module in pkg sdk; do
    dir="$(cd "${scratch}" && GOFLAGS=-mod=mod timeout "${BUILD_TIMEOUT_SECONDS}" \
        go mod download -json "github.com/pulumi/pulumi/${module}/v3@${VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    cp -r "${dir}" "${scratch}/${module}"
done
chmod -R u+w "${scratch}"
(cd "${scratch}/pkg" && timeout "${BUILD_TIMEOUT_SECONDS}" go build -o "${OLDPWD}/${BIN}.partial" ./cmd/pulumi)
mv "${BIN}.partial" "${BIN}"
log "built ${VERSION} in $(($(date +%s) - started)) s"
echo "${BIN}"
