"""ix_compras_completadas_cliente: each customer's completed purchases (count and sum) read from
the index alone, in customer order, for the customer detail's totals and the loyalty report
(its window from fecha_compra, no hash table: see queries.prepare_report_transaction).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_compras_completadas_cliente",
        "compras",
        ["cliente_id"],
        postgresql_include=["fecha_compra", "monto"],
        postgresql_where=sa.text("estado = 'completada'"),
    )


def downgrade() -> None:
    op.drop_index("ix_compras_completadas_cliente", table_name="compras")
