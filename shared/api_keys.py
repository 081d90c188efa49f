"""API keys: generation, hashing, scopes, and the `api_keys` CLI (create, list, revoke).

Only a key's sha256 is stored; the key is shown once. Every change is announced with
NOTIFY so API processes drop their cache of verified keys at once.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Insert, Select, Update, func, insert, select, text, update

from shared.models import ApiKey

SCOPES = ("read", "export", "admin")
KEY_PREFIX = "clk_"
CHANGED_CHANNEL = "api_keys_changed"
NOTIFY_CHANGED = text(f"NOTIFY {CHANGED_CHANNEL}")


@dataclass(frozen=True, slots=True)
class NewKey:
    key: str
    key_hash: str
    key_prefix: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> NewKey:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(key=key, key_hash=hash_key(key), key_prefix=key[:12])


def validate_scopes(scopes: Sequence[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; allowed: {list(SCOPES)}")
    if not scopes:
        raise ValueError(f"at least one scope is needed; allowed: {list(SCOPES)}")
    return sorted(set(scopes), key=SCOPES.index)


# Statements, executed by the CLI (sync) and by the API (async) alike.


def insert_key(name: str, scopes: Sequence[str], new_key: NewKey) -> Insert:
    return (
        insert(ApiKey)
        .values(
            id=uuid.uuid4(),
            name=name,
            scopes=validate_scopes(scopes),
            key_hash=new_key.key_hash,
            key_prefix=new_key.key_prefix,
        )
        .returning(ApiKey.id, ApiKey.name, ApiKey.scopes, ApiKey.created_at)
    )


def select_keys(
    *, include_revoked: bool = False
) -> Select[uuid.UUID, str, str, list[str], datetime, datetime | None]:
    query = select(
        ApiKey.id,
        ApiKey.name,
        ApiKey.key_prefix,
        ApiKey.scopes,
        ApiKey.created_at,
        ApiKey.revoked_at,
    ).order_by(ApiKey.created_at, ApiKey.id)
    return query if include_revoked else query.where(ApiKey.revoked_at.is_(None))


def select_active_by_hash(key_hash: str) -> Select[uuid.UUID, str, list[str], int | None]:
    return select(ApiKey.id, ApiKey.name, ApiKey.scopes, ApiKey.rate_limit_per_minute).where(
        ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
    )


def select_active_hashes() -> Select[str]:
    return select(ApiKey.key_hash).where(ApiKey.revoked_at.is_(None))


def revoke_key(key_id: uuid.UUID) -> Update:
    return (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey.id)
    )


def upsert_bootstrap_key(key: str) -> Insert:
    """Make sure a key with this exact value and every scope exists (compose, `make run`).
    A key once revoked stays revoked: a leaked bootstrap key must not come back at the next
    deploy (replace it with a new API_BOOTSTRAP_KEY, or let the credentials file make one)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    key_hash = hash_key(key)
    statement = pg_insert(ApiKey).values(
        id=uuid.uuid4(),
        name="bootstrap",
        key_hash=key_hash,
        key_prefix=key[:12],
        scopes=list(SCOPES),
    )
    return statement.on_conflict_do_update(
        index_elements=[ApiKey.key_hash],
        set_={"scopes": list(SCOPES)},
    ).returning(ApiKey.revoked_at)


def ensure_bootstrap_key(connection: Connection, key: str | None) -> None:
    if key:
        if connection.execute(upsert_bootstrap_key(key)).scalar_one() is not None:
            print(
                "API_BOOTSTRAP_KEY was revoked and stays revoked: set a new one "
                "(or `api_keys create`)",
                file=sys.stderr,
            )
        connection.execute(NOTIFY_CHANGED)


def main(argv: Sequence[str] | None = None) -> int:
    from shared.db import sync_engine

    parser = argparse.ArgumentParser(prog="api_keys", description="Manage Clientes API keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scopes", default="read", help=f"comma-separated, from {','.join(SCOPES)} (default read)"
    )
    listing = commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = commands.add_parser("revoke", help="revoke a key by id; it stops working at once")
    revoke.add_argument("id", type=uuid.UUID)
    args = parser.parse_args(argv)

    with sync_engine().begin() as connection:
        if args.command == "create":
            try:
                scopes = validate_scopes([s.strip() for s in args.scopes.split(",") if s.strip()])
            except ValueError as error:
                parser.error(str(error))
            new_key = generate_key()
            row = connection.execute(insert_key(args.name, scopes, new_key)).one()
            connection.execute(NOTIFY_CHANGED)
            print(f"id:     {row.id}\nname:   {row.name}\nscopes: {','.join(row.scopes)}")
            print(f"key:    {new_key.key}\n(shown once: store it now)")
        elif args.command == "list":
            for row in connection.execute(select_keys(include_revoked=args.all)):
                revoked = f"  revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else ""
                print(
                    f"{row.id}  {row.name:<24} {row.key_prefix}…  "
                    f"{','.join(row.scopes):<18} {row.created_at:%Y-%m-%d %H:%M}{revoked}"
                )
        else:
            if connection.execute(revoke_key(args.id)).first() is None:
                print(f"no active key with id {args.id}", file=sys.stderr)
                return 1
            connection.execute(NOTIFY_CHANGED)
            print(f"revoked {args.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
