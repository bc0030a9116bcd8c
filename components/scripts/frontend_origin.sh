# The frontend behind one origin: the browser code of ArgusAI's published frontend image calls the API at
# the URL baked in at build time (NEXT_PUBLIC_API_URL, the release Dockerfile's default
# http://localhost:8000), that is at the localhost of whichever device runs the browser. Behind the proxy
# the API is on the page's own origin, so that URL is taken out of the Next.js output, which then calls
# relative URLs (and derives its WebSocket URL from the page's location), as an image built with an empty
# NEXT_PUBLIC_API_URL does.
#
#   sh frontend_origin.sh check   what `serve` would do, changing nothing; exit 1 (with the reason) when
#                                 the image is not what this expects (run by the frontend-check step,
#                                 before the running frontend is replaced)
#   sh frontend_origin.sh serve   take the baked URL out, then run the release's server (`node server.js`)
#
# The image is what this expects when it is a Next.js standalone build ($APP/server.js, $APP/.next/static)
# whose browser code, once BAKED_API_URL is taken out, calls no loopback address with a port. An image
# built for one origin (nothing baked) is served as it is. Environment: FRONTEND_IMAGE (for messages),
# BAKED_API_URL, FRONTEND_APP (default /app).
set -eu
mode="${1:-}"
app="${FRONTEND_APP:-/app}"
baked="${BAKED_API_URL:-http://localhost:8000}"
image="${FRONTEND_IMAGE:-the frontend image}"

fail() {
    echo "frontend-origin: $image: $*" >&2
    echo "frontend-origin: it cannot be served behind one origin as it is; build it with an empty API URL" \
        "(docker build --build-arg NEXT_PUBLIC_API_URL= ...) and set argusai:frontendImage to that image" >&2
    exit 1
}

[ -f "$app/server.js" ] && [ -d "$app/.next/static" ] ||
    fail "no Next.js standalone server ($app/server.js and $app/.next/static): not the layout this program serves"

# Every JavaScript file of the build (browser and server code) that holds the baked URL.
baked_files() { find "$app/.next" -name '*.js' -type f -exec grep -lF "$baked" {} + 2>/dev/null || true; }
# Loopback URLs with a port left in the browser code, the baked one aside.
strays() {
    find "$app/.next/static" -name '*.js' -type f -exec grep -ohE 'https?://(localhost|127\.0\.0\.1):[0-9]+' {} + \
        2>/dev/null | grep -vxF "$baked" | sort -u || true
}

left="$(strays)"
[ -z "$left" ] || fail "its browser code calls $(echo "$left" | tr '\n' ' ')which no device but the server can reach"
files="$(baked_files)"
count="$(printf '%s' "$files" | grep -c . || true)"

case "$mode" in
check)
    if [ "$count" -gt 0 ]; then
        echo "frontend-origin: $image: $baked is baked into $count files; it will be taken out at start"
    else
        echo "frontend-origin: $image: no API URL baked in (built for one origin); served as it is"
    fi
    ;;
serve)
    if [ "$count" -gt 0 ]; then
        pattern="$(printf '%s' "$baked" | sed 's/[].[*^$\\#]/\\&/g')"
        printf '%s\n' "$files" | while IFS= read -r file; do sed -i "s#$pattern##g" "$file"; done
        echo "frontend-origin: $baked taken out of $count files"
    fi
    cd "$app"
    exec node server.js
    ;;
*)
    echo "usage: sh frontend_origin.sh check|serve" >&2
    exit 2
    ;;
esac
