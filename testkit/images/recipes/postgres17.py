"""PostgreSQL 17 (``argusai-test/postgres:17``): Debian trixie's server, the same image as PostgreSQL 15's.

The newer major of the day-two tests: a stack's data made under 15 (bookworm) is upgraded to it.
"""

from __future__ import annotations

from testkit.images.recipes.postgres import postgres_recipe

#: The suite of the same archive that ships PostgreSQL 17.
SUITE_17 = "trixie"

POSTGRES_17 = postgres_recipe("17", SUITE_17)
