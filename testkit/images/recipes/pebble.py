"""Pebble (``argusai-test/pebble:2``): Debian's package of Let's Encrypt's ACME test server."""

from __future__ import annotations

from testkit.images.recipe import DEFAULT_PATH, Recipe, StandInFile

PEBBLE_CONFIG = "/etc/pebble/pebble-config.json"
PEBBLE = Recipe(
    tag="argusai-test/pebble:2",
    packages=("pebble",),
    files=(StandInFile("pebble/pebble-config.json", PEBBLE_CONFIG),),
    # Pebble serves ACME over HTTPS only, and the package has no certificate for it (upstream's
    # test/certs are not packaged): a self-signed one, made on the build host, for the names a test
    # reaches it by. Tests may mount their own certificate, key and config instead.
    customize_hooks=(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj /CN=pebble"
        ' -addext "subjectAltName=DNS:pebble,DNS:localhost,IP:127.0.0.1,IP:::1"'
        ' -keyout "$1/etc/pebble/key.pem" -out "$1/etc/pebble/cert.pem" 2>/dev/null',
        'chmod 0644 "$1/etc/pebble/key.pem"',
    ),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        # No random 0-15 s pause before each validation.
        "ENV PEBBLE_VA_NOSLEEP=1",
        # Arguments given as the command come after the config (a second -config wins: Go's flags).
        f'ENTRYPOINT ["/usr/bin/pebble", "-config", "{PEBBLE_CONFIG}"]',
        "EXPOSE 14000 15000",
    ),
)
