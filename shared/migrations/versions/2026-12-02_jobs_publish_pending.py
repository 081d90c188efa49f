"""jobs.publish_pending: jobs the API accepted but could not publish, for the scheduler.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 13:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "jobs",
        sa.Column("publish_pending", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_index(
        "ix_jobs_publish_pending",
        "jobs",
        ["id"],
        unique=False,
        postgresql_where=sa.text("publish_pending"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_jobs_publish_pending", table_name="jobs", postgresql_where=sa.text("publish_pending")
    )
    op.drop_column("jobs", "publish_pending")
