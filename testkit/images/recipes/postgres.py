"""PostgreSQL 15 (``argusai-test/postgres:15``): Debian bookworm's server behind an entry point.

The entry point follows the official ``postgres`` image's contract. ``postgres_recipe`` makes the same
image of another major from the Debian suite that ships it (``postgres17.py``).
"""

from __future__ import annotations

from testkit.images.recipe import DEFAULT_PATH, SUITE, Recipe, StandInFile

PG_MAJOR = "15"


def postgres_recipe(major: str, suite: str = SUITE) -> Recipe:
    """The stand-in image of PostgreSQL `major`, from the Debian `suite` that ships it."""
    pg_bin = f"/usr/lib/postgresql/{major}/bin"
    return Recipe(
        tag=f"argusai-test/postgres:{major}",
        # The first one keeps the name it always had (its cache and its tag in the tests).
        short_name="" if major == PG_MAJOR else f"postgres{major}",
        suite=suite,
        packages=(f"postgresql-{major}", "dumb-init"),
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
            f"path-exclude=/usr/lib/postgresql/{major}/lib/bitcode/*",
            f"path-exclude=/usr/lib/postgresql/{major}/lib/llvmjit*",
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
            f"ENV PATH={pg_bin}:{DEFAULT_PATH}",
            f"ENV PG_MAJOR={major}",
            "ENV PGDATA=/var/lib/postgresql/data",
            "ENV LANG=C.UTF-8",
            'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
            'CMD ["postgres"]',
            "EXPOSE 5432",
        ),
    )


POSTGRES = postgres_recipe(PG_MAJOR)
