"""clientes_totales: each customer's completed purchases, counted and summed, kept by triggers on
compras, so that an export of many customers reads their totals instead of aggregating every
purchase (SPEC §10: total_compras, monto_total_compras of every row).

The triggers are per statement, over its transition tables: one aggregate and one upsert per
statement however many purchases it touches (a seed's COPY, an admin's edit). A customer whose
purchases are all gone keeps a row of zeros, which reads like no row at all.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The purchases a statement added (+1) or removed (-1), by operation; an UPDATE does both.
# Written as dynamic SQL: a trigger function may only name the transition tables its trigger
# has, and the three share the rest.
APPLY = """
CREATE FUNCTION clientes_totales_aplicar() RETURNS trigger LANGUAGE plpgsql AS $function$
DECLARE
    nuevas CONSTANT text := 'SELECT cliente_id, monto, estado, 1 AS signo FROM nuevas';
    viejas CONSTANT text := 'SELECT cliente_id, monto, estado, -1 AS signo FROM viejas';
BEGIN
    EXECUTE format($sql$
        INSERT INTO clientes_totales AS t (cliente_id, cantidad, monto)
        SELECT f.cliente_id, sum(f.signo), sum(f.signo * f.monto)
        FROM (%s) AS f
        WHERE f.estado = 'completada'
        GROUP BY f.cliente_id
        HAVING sum(f.signo) <> 0 OR sum(f.signo * f.monto) <> 0
        ORDER BY f.cliente_id  -- rows locked in one order: concurrent statements cannot deadlock
        ON CONFLICT (cliente_id) DO UPDATE
        SET cantidad = t.cantidad + excluded.cantidad, monto = t.monto + excluded.monto
    $sql$, CASE TG_OP
        WHEN 'INSERT' THEN nuevas
        WHEN 'DELETE' THEN viejas
        ELSE nuevas || ' UNION ALL ' || viejas
    END);
    RETURN NULL;
END
$function$
"""
EMPTY = """
CREATE FUNCTION clientes_totales_vaciar() RETURNS trigger LANGUAGE plpgsql AS $function$
BEGIN
    TRUNCATE clientes_totales;
    RETURN NULL;
END
$function$
"""
TRIGGERS = (
    ("clientes_totales_insert", "INSERT", "NEW TABLE AS nuevas"),
    ("clientes_totales_update", "UPDATE", "OLD TABLE AS viejas NEW TABLE AS nuevas"),
    ("clientes_totales_delete", "DELETE", "OLD TABLE AS viejas"),
)


def upgrade() -> None:
    op.create_table(
        "clientes_totales",
        sa.Column("cliente_id", sa.BigInteger(), nullable=False),
        sa.Column("cantidad", sa.BigInteger(), nullable=False),
        sa.Column("monto", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("cliente_id", name=op.f("pk_clientes_totales")),
    )
    op.execute(APPLY)
    op.execute(EMPTY)
    # No purchase may change between the totals' first count and their triggers.
    op.execute("LOCK TABLE compras IN SHARE ROW EXCLUSIVE MODE")
    for name, event, tables in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON compras REFERENCING {tables}"
            " FOR EACH STATEMENT EXECUTE FUNCTION clientes_totales_aplicar()"
        )
    op.execute(
        "CREATE TRIGGER clientes_totales_truncate AFTER TRUNCATE ON compras"
        " FOR EACH STATEMENT EXECUTE FUNCTION clientes_totales_vaciar()"
    )
    op.execute(
        "INSERT INTO clientes_totales (cliente_id, cantidad, monto)"
        " SELECT cliente_id, count(*), sum(monto) FROM compras WHERE estado = 'completada'"
        " GROUP BY cliente_id"
    )


def downgrade() -> None:
    for name in [name for name, _, _ in TRIGGERS] + ["clientes_totales_truncate"]:
        op.execute(f"DROP TRIGGER {name} ON compras")
    op.execute("DROP FUNCTION clientes_totales_vaciar()")
    op.execute("DROP FUNCTION clientes_totales_aplicar()")
    op.drop_table("clientes_totales")
