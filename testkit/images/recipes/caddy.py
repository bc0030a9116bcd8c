"""Caddy 2 (``argusai-test/caddy:2``): Debian's package with the official ``caddy`` image's contract."""

from __future__ import annotations

from testkit.images.recipe import DEFAULT_PATH, Recipe

CADDY = Recipe(
    tag="argusai-test/caddy:2",
    # Debian's caddy 2.6 ships /etc/caddy/Caddyfile and /usr/share/caddy/index.html, the same default
    # site as the official image's. Its maintainer script creates a caddy user with groupadd/useradd
    # (passwd); its systemd units and that user play no part here: the image runs caddy as root, as
    # the official one does. busybox gives the image the wget of caddy:2-alpine.
    packages=("caddy", "passwd", "busybox", "ca-certificates"),
    customize_hooks=(
        'ln -s /bin/busybox "$1/usr/local/bin/wget"',
        'mkdir -p "$1/config/caddy" "$1/data/caddy" "$1/srv"',
    ),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        "ENV XDG_CONFIG_HOME=/config",
        "ENV XDG_DATA_HOME=/data",
        'VOLUME ["/config", "/data"]',
        "WORKDIR /srv",
        'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]',
        "EXPOSE 80 443 443/udp 2019",
    ),
)
