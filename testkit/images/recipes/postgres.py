"""PostgreSQL 15 (``argusai-test/postgres:15``): Debian's server behind an entry point.

The entry point follows the official ``postgres`` image's contract.
"""

from __future__ import annotations

from testkit.images.recipe import DEFAULT_PATH, Recipe, StandInFile

PG_MAJOR = "15"
PG_BIN = f"/usr/lib/postgresql/{PG_MAJOR}/bin"

POSTGRES = Recipe(
    tag=f"argusai-test/postgres:{PG_MAJOR}",
    packages=(f"postgresql-{PG_MAJOR}", "dumb-init"),
    files=(
        StandInFile(
            "postgres/docker-entrypoint.sh",
            "/usr/local/bin/docker-entrypoint.sh",
            "0755",
        ),
        StandInFile("postgres/postgres-start.sh", "/usr/local/bin/postgres-start.sh", "0755"),
    ),
    # The LLVM JIT provider and what only it needs (libLLVM, libz3, bitcode)
    # are about 150 MiB; the entry point sets jit = off.
    dpkg_options=(
        f"path-exclude=/usr/lib/postgresql/{PG_MAJOR}/lib/bitcode/*",
        f"path-exclude=/usr/lib/postgresql/{PG_MAJOR}/lib/llvmjit*",
        "path-exclude=/usr/lib/*/libLLVM-*",
        "path-exclude=/usr/lib/*/libz3.so*",
    ),
    # The package would otherwise create a "main" cluster at install time;
    # the entry point initialises its own data directory instead.
    essential_hooks=(
        'mkdir -p "$1/etc/postgresql-common/createcluster.d"',
        "echo 'create_main_cluster = false' > \"$1/etc/postgresql-common/createcluster.d/argusai-no-main.conf\"",
    ),
    customize_hooks=(
        'mkdir -p "$1/docker-entrypoint-initdb.d" "$1/var/lib/postgresql/data" "$1/run/postgresql"',
        'chroot "$1" chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql',
        'chmod 0700 "$1/var/lib/postgresql/data"',
        'chmod 3777 "$1/run/postgresql"',
    ),
    changes=(
        f"ENV PATH={PG_BIN}:{DEFAULT_PATH}",
        f"ENV PG_MAJOR={PG_MAJOR}",
        "ENV PGDATA=/var/lib/postgresql/data",
        "ENV LANG=C.UTF-8",
        'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
        'CMD ["postgres"]',
        "EXPOSE 5432",
    ),
)
