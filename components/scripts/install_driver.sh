# The backend's PostgreSQL driver, when its image carries none (ArgusAI's published image: its
# requirements.txt has no PostgreSQL driver). Run by the `driver` step in the backend image, as root, with
# the driver volume at DRIVER_ROOT and the app network (the index is reached through it).
#
# Environment: DRIVER_MODULE (psycopg or psycopg2), DRIVER_PACKAGES (pinned, space separated), DRIVER_DIR
# (where in the volume; named after the pins), INDEX_URL (argusai:pythonIndexUrl; empty: the index pip in
# the image is configured with, else pip's own default).
#
# - The image imports DRIVER_MODULE by itself: used as it is, nothing installed.
# - DRIVER_DIR is complete (an earlier run): nothing to do.
# - Otherwise pip installs exactly the pinned packages (no dependencies: the image's own packages stay
#   the ones the backend imports) into DRIVER_DIR.partial, the import is tried from there, and the
#   directory is renamed into place; a failure leaves nothing the backend could half-load.
set -eu
complete="$DRIVER_DIR/.complete"
if python -c "import $DRIVER_MODULE" 2>/dev/null; then
    echo "driver: the image carries $DRIVER_MODULE; used as it is, nothing installed"
    exit 0
fi
if [ -f "$complete" ]; then
    echo "driver: $DRIVER_PACKAGES already installed in the driver volume"
    exit 0
fi
python -m pip --version >/dev/null 2>&1 || {
    echo "driver: the backend image has neither $DRIVER_MODULE nor pip; use an image that carries a PostgreSQL driver" >&2
    exit 1
}
partial="$DRIVER_DIR.partial"
rm -rf "$partial"
# pip ignores an index on plain HTTP unless its host is trusted: the operator named this one (a mirror).
index="" source="pip's configured index"
case "$INDEX_URL" in
"") ;;
http://*) index="--index-url $INDEX_URL --trusted-host $(echo "$INDEX_URL" | sed -e 's#^http://##' -e 's#[/:].*##')" ;;
*) index="--index-url $INDEX_URL" ;;
esac
[ -z "$INDEX_URL" ] || source="$INDEX_URL"
# shellcheck disable=SC2086 # DRIVER_PACKAGES is a list of pinned requirements, $index words or none
if ! python -m pip install --no-cache-dir --disable-pip-version-check --no-input --no-deps --only-binary=:all: \
    --timeout 30 --retries 2 $index --target "$partial" $DRIVER_PACKAGES; then
    rm -rf "$partial"
    echo "driver: could not install $DRIVER_PACKAGES from $source: set argusai:pythonIndexUrl to an index" \
        "this Docker host reaches (a mirror), or use a backend image that carries $DRIVER_MODULE" >&2
    exit 1
fi
PYTHONPATH="$partial" python -c "import $DRIVER_MODULE; print('driver:', $DRIVER_MODULE.__name__, $DRIVER_MODULE.__version__)"
rm -rf "$DRIVER_DIR"
mv "$partial" "$DRIVER_DIR"
touch "$complete"
echo "driver: installed $DRIVER_PACKAGES from $source"
