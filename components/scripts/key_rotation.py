"""Every stored credential re-encrypted under the new ENCRYPTION_KEY, before the backend gets it (`key-rotation`).

Run as `python -m key_rotation` in the backend image (working directory `/app`, the release's `app` package
importable), with DATABASE_URL, the release's settings (ENCRYPTION_KEY: the new key, ENCRYPTION_KEY_PREVIOUS:
the key in use until now, JWT_SECRET_KEY), after the pre-upgrade backup and the schema gate.

The release stores a credential as `encrypted:` followed by a Fernet token (`app/utils/encryption.py`), in
several tables (cameras, controllers, MQTT, HomeKit, devices' push tokens, settings: API keys, SMTP, the
push key). The release's own `scripts/rotate_encryption_key.py` cannot be used: it sets its keys in the
environment after the release's settings were read, so it re-encrypts under the old key; it knows only some
of the tables; it prints the failures of single rows, commits the rest and exits 0; and it prints the start
of the new key and takes both keys on its command line. This one:

- finds every such value in every text column of every table (SQLAlchemy's reflection: SQLite and
  PostgreSQL alike), so a table the release adds later is not missed;
- decrypts each with the release's own `decrypt_password` (the new key, then the previous one) and
  encrypts it again under the new key in the release's format; a value already under the new key is left
  as it is, so running again changes nothing;
- does it all in one transaction: a value that decrypts with neither key stops the step with nothing
  changed, naming the table, the column and the rows (never a value);
- reads both keys from its environment only.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict

PREFIX = "encrypted:"


def main() -> int:
    """Re-encrypt every `encrypted:` value under the new key; 0 when all were, 1 (nothing changed) otherwise."""
    import sqlalchemy as sa
    from app.utils.encryption import decrypt_password
    from cryptography.fernet import Fernet, InvalidToken

    new_key = Fernet(os.environ["ENCRYPTION_KEY"].strip().encode())
    engine = sa.create_engine(os.environ["DATABASE_URL"])
    metadata = sa.MetaData()
    metadata.reflect(bind=engine)
    moved: dict[str, int] = defaultdict(int)
    unreadable: dict[str, list[str]] = defaultdict(list)
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            keys = list(table.primary_key.columns)
            if not keys:
                continue
            for column in table.columns:
                # Text columns; an enum (a String to SQLAlchemy, its own type to PostgreSQL) holds no credential.
                if not isinstance(column.type, sa.String) or isinstance(column.type, sa.Enum):
                    continue
                rows = connection.execute(sa.select(*keys, column).where(column.like(f"{PREFIX}%"))).all()
                for *key, value in rows:
                    where = f"{table.name}.{column.name}"
                    try:
                        new_key.decrypt(value.removeprefix(PREFIX).encode())
                        continue  # already under the new key
                    except InvalidToken:
                        pass
                    try:
                        plain = decrypt_password(value)
                    except ValueError:
                        unreadable[where].append("/".join(str(k) for k in key))
                        continue
                    # The release's format (`encrypt_password`), written directly: that function returns an
                    # empty value, or one that starts with the prefix, as it is.
                    again = PREFIX + new_key.encrypt(plain.encode()).decode()
                    connection.execute(
                        sa.update(table)
                        .where(*(k == v for k, v in zip(keys, key, strict=True)))
                        .values({column.name: again})
                    )
                    moved[where] += 1
        if unreadable:
            for where, rows in sorted(unreadable.items()):
                print(
                    f"key-rotation: {where}: {len(rows)} values decrypt with neither key (rows {', '.join(rows[:10])})"
                )
            # Leaving the block with an exception rolls the whole transaction back.
            raise SystemExit(
                "key-rotation: FAILED: some stored credentials decrypt with neither argusai:encryptionKey nor "
                "argusai:encryptionKeyPrevious (the key in use before this rotation); nothing was changed: the "
                "backend keeps the key it has. Set argusai:encryptionKeyPrevious to the key the data was written with."
            )
    total = sum(moved.values())
    detail = ", ".join(f"{where} {count}" for where, count in sorted(moved.items())) or "none to move"
    print(f"key-rotation: {total} stored credentials re-encrypted under the new key ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
