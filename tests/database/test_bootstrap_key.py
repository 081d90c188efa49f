"""The bootstrap key ensured at every start (shared.prestart) never undoes a revocation."""

from __future__ import annotations

from sqlalchemy import Engine, select

from shared import api_keys
from shared.models import ApiKey


def revoked_at_of(engine: Engine, key: str) -> object:
    with engine.connect() as connection:
        return connection.execute(
            select(ApiKey.revoked_at).where(ApiKey.key_hash == api_keys.hash_key(key))
        ).scalar_one()


def test_a_revoked_bootstrap_key_stays_revoked_at_the_next_start(engine: Engine) -> None:
    key = api_keys.generate_key().key
    with engine.begin() as connection:
        api_keys.ensure_bootstrap_key(connection, key)
    assert revoked_at_of(engine, key) is None
    with engine.begin() as connection:
        key_id = connection.execute(
            select(ApiKey.id).where(ApiKey.key_hash == api_keys.hash_key(key))
        ).scalar_one()
        assert connection.execute(api_keys.revoke_key(key_id)).first() is not None
    revoked_at = revoked_at_of(engine, key)
    assert revoked_at is not None

    with engine.begin() as connection:  # the next deploy, same API_BOOTSTRAP_KEY
        api_keys.ensure_bootstrap_key(connection, key)
    assert revoked_at_of(engine, key) == revoked_at
