"""The migrations build exactly the models' schema, and tear it down again, on a fresh database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from harness.databases import alembic_config, throwaway_database
from shared.models import Base
from shared.settings import to_psycopg_url


@pytest.fixture
def fresh_database() -> Iterator[str]:
    with throwaway_database("clientes_migrations", migrated=False) as url:
        yield url


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


# Alembic cannot compare an expression index with an operator class; the trigram index is
# checked by hand below (and its use by the `q` search in test_clientes_api).
@pytest.mark.filterwarnings("ignore:.*ix_clientes_busqueda_trgm.*:UserWarning")
def test_upgrade_downgrade_upgrade_leaves_the_models_schema(fresh_database: str) -> None:
    config = alembic_config(fresh_database)
    engine = create_engine(to_psycopg_url(fresh_database))
    try:
        command.upgrade(config, "head")
        assert _tables(engine) == set(Base.metadata.tables) | {"alembic_version"}

        command.downgrade(config, "base")
        assert _tables(engine) == {"alembic_version"}

        command.upgrade(config, "head")
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        with engine.connect() as connection:
            trigram_index = connection.execute(
                text(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_clientes_busqueda_trgm'"
                )
            ).scalar_one()
        assert "USING gin" in trigram_index and "gin_trgm_ops" in trigram_index
    finally:
        engine.dispose()
