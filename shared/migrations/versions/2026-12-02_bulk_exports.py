"""bulk exports (SPEC §10): the exportacion_masiva job type, its rows_written, job_inputs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TYPES = "type IN ('export_cliente', 'reporte_fidelizacion')"
NEW_TYPES = "type IN ('export_cliente', 'reporte_fidelizacion', 'exportacion_masiva')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_jobs_type_valido"), "jobs", type_="check")
    op.create_check_constraint(op.f("ck_jobs_type_valido"), "jobs", NEW_TYPES)
    op.add_column("jobs", sa.Column("rows_written", sa.BigInteger(), nullable=True))
    op.create_table(
        "job_inputs",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("ids", postgresql.ARRAY(sa.BigInteger()), nullable=True),
        sa.Column("codigos", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("numeros", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_inputs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_inputs")),
    )


def downgrade() -> None:
    op.drop_table("job_inputs")
    op.drop_column("jobs", "rows_written")
    op.execute("DELETE FROM jobs WHERE type = 'exportacion_masiva'")
    op.drop_constraint(op.f("ck_jobs_type_valido"), "jobs", type_="check")
    op.create_check_constraint(op.f("ck_jobs_type_valido"), "jobs", OLD_TYPES)
