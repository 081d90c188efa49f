"""initial schema: document types, customers, purchases, API keys and jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 18:42:44.883893
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Trigram index for the name/e-mail search (`q`).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=20)), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "tipos_documento",
        sa.Column("id", sa.SmallInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("codigo", sa.String(length=5), nullable=False),
        sa.Column("nombre", sa.String(length=100), nullable=False),
        sa.Column("descripcion", sa.Text(), server_default="", nullable=False),
        sa.Column("activo", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tipos_documento")),
        sa.UniqueConstraint("codigo", name=op.f("uq_tipos_documento_codigo")),
    )
    op.create_table(
        "clientes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tipo_documento_id", sa.SmallInteger(), nullable=False),
        sa.Column("numero_documento", sa.String(length=20), nullable=False),
        sa.Column("nombre", sa.String(length=100), nullable=False),
        sa.Column("apellido", sa.String(length=100), nullable=False),
        sa.Column("correo", sa.String(length=254), server_default="", nullable=False),
        sa.Column("telefono", sa.String(length=30), server_default="", nullable=False),
        sa.Column(
            "fecha_registro",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("activo", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tipo_documento_id"],
            ["tipos_documento.id"],
            name=op.f("fk_clientes_tipo_documento_id_tipos_documento"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clientes")),
        sa.UniqueConstraint(
            "tipo_documento_id",
            "numero_documento",
            name=op.f("uq_clientes_tipo_documento_id_numero_documento"),
        ),
    )
    op.create_index(
        "ix_clientes_busqueda_trgm",
        "clientes",
        [sa.literal_column("(lower(nombre || ' ' || apellido || ' ' || correo)) gin_trgm_ops")],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("progress", sa.SmallInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("storage_key", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'canceled', 'expired')",
            name=op.f("ck_jobs_status_valido"),
        ),
        sa.CheckConstraint(
            "type IN ('export_cliente', 'reporte_fidelizacion')", name=op.f("ck_jobs_type_valido")
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_jobs_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint(
            "api_key_id", "idempotency_key", name=op.f("uq_jobs_api_key_id_idempotency_key")
        ),
    )
    op.create_index(
        "ix_jobs_owner_created",
        "jobs",
        ["api_key_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "ix_jobs_pending",
        "jobs",
        ["status", "updated_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'running', 'succeeded')"),
    )
    op.create_table(
        "compras",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("cliente_id", sa.BigInteger(), nullable=False),
        sa.Column("numero_factura", sa.String(length=30), nullable=False),
        sa.Column("fecha_compra", sa.DateTime(timezone=True), nullable=False),
        sa.Column("monto", sa.Numeric(precision=15, scale=2), nullable=False),
        sa.Column("descripcion", sa.Text(), server_default="", nullable=False),
        sa.Column("estado", sa.String(length=12), nullable=False),
        sa.CheckConstraint(
            "estado IN ('pendiente', 'completada', 'cancelada')",
            name=op.f("ck_compras_estado_valido"),
        ),
        sa.CheckConstraint("monto >= 0", name=op.f("ck_compras_monto_no_negativo")),
        sa.ForeignKeyConstraint(
            ["cliente_id"],
            ["clientes.id"],
            name=op.f("fk_compras_cliente_id_clientes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compras")),
        sa.UniqueConstraint("numero_factura", name=op.f("uq_compras_numero_factura")),
    )
    op.create_index(
        "ix_compras_cliente_fecha",
        "compras",
        ["cliente_id", sa.literal_column("fecha_compra DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "ix_compras_completadas_fecha",
        "compras",
        ["fecha_compra"],
        unique=False,
        postgresql_include=["cliente_id", "monto"],
        postgresql_where=sa.text("estado = 'completada'"),
    )
    op.bulk_insert(
        sa.table(
            "tipos_documento",
            sa.column("codigo", sa.String),
            sa.column("nombre", sa.String),
            sa.column("descripcion", sa.Text),
        ),
        [
            {"codigo": codigo, "nombre": nombre, "descripcion": descripcion}
            for codigo, nombre, descripcion in TIPOS_DOCUMENTO
        ],
    )


# Reference data the whole system relies on; customers are seed data, these are not.
TIPOS_DOCUMENTO = [
    ("NIT", "Número de Identificación Tributaria", "Personas jurídicas y naturales con RUT"),
    ("CC", "Cédula de Ciudadanía", "Ciudadanos colombianos mayores de edad"),
    ("PA", "Pasaporte", "Documento de viaje de extranjeros"),
    ("CE", "Cédula de Extranjería", "Extranjeros residentes en Colombia"),
    ("TI", "Tarjeta de Identidad", "Colombianos menores de edad"),
]


def downgrade() -> None:
    op.drop_index(
        "ix_compras_completadas_fecha",
        table_name="compras",
        postgresql_include=["cliente_id", "monto"],
        postgresql_where=sa.text("estado = 'completada'"),
    )
    op.drop_index("ix_compras_cliente_fecha", table_name="compras")
    op.drop_table("compras")
    op.drop_index(
        "ix_jobs_pending",
        table_name="jobs",
        postgresql_where=sa.text("status IN ('queued', 'running', 'succeeded')"),
    )
    op.drop_index("ix_jobs_owner_created", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_clientes_busqueda_trgm", table_name="clientes", postgresql_using="gin")
    op.drop_table("clientes")
    op.drop_table("tipos_documento")
    op.drop_table("api_keys")
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
