"""SQLAlchemy models: the schema's single source of truth (Alembic migrations follow it).

Domain tables keep the original system's Spanish vocabulary; infrastructure tables are English.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Explicit, predictable constraint names so migrations can name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ESTADOS_COMPRA = ("pendiente", "completada", "cancelada")


def texto_busqueda(alias: str = "") -> str:
    """The expression of ix_clientes_busqueda_trgm (name/e-mail search). A search must use this
    exact expression for PostgreSQL to serve it from the trigram index: call it, never retype it."""
    prefix = f"{alias}." if alias else ""
    return f"lower({prefix}nombre || ' ' || {prefix}apellido || ' ' || {prefix}correo)"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TipoDocumento(Base):
    __tablename__ = "tipos_documento"

    id: Mapped[int] = mapped_column(SmallInteger, Identity(), primary_key=True)
    codigo: Mapped[str] = mapped_column(String(5), unique=True)
    nombre: Mapped[str] = mapped_column(String(100))
    descripcion: Mapped[str] = mapped_column(Text, default="", server_default="")
    activo: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    def __str__(self) -> str:
        return f"{self.codigo} - {self.nombre}"


class Cliente(Base):
    __tablename__ = "clientes"
    __table_args__ = (
        UniqueConstraint("tipo_documento_id", "numero_documento"),
        # Name/e-mail search (`q`) is a case-insensitive substring match: trigram index.
        Index(
            "ix_clientes_busqueda_trgm",
            text(f"({texto_busqueda()}) gin_trgm_ops"),
            postgresql_using="gin",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tipo_documento_id: Mapped[int] = mapped_column(ForeignKey("tipos_documento.id"))
    numero_documento: Mapped[str] = mapped_column(String(20))
    nombre: Mapped[str] = mapped_column(String(100))
    apellido: Mapped[str] = mapped_column(String(100))
    correo: Mapped[str] = mapped_column(String(254), default="", server_default="")
    telefono: Mapped[str] = mapped_column(String(30), default="", server_default="")
    fecha_registro: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    activo: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    tipo_documento: Mapped[TipoDocumento] = relationship(lazy="joined")

    @property
    def nombre_completo(self) -> str:
        return f"{self.nombre} {self.apellido}"

    def __str__(self) -> str:
        return f"{self.nombre_completo} ({self.numero_documento})"


class Compra(Base):
    __tablename__ = "compras"
    __table_args__ = (
        CheckConstraint("monto >= 0", name="monto_no_negativo"),
        CheckConstraint("estado IN ('pendiente', 'completada', 'cancelada')", name="estado_valido"),
        # A customer's latest purchases (detail, export).
        Index("ix_compras_cliente_fecha", "cliente_id", text("fecha_compra DESC"), text("id DESC")),
        # Completed purchases in a date window (loyalty report): index-only scan + hash aggregate.
        Index(
            "ix_compras_completadas_fecha",
            "fecha_compra",
            postgresql_include=["cliente_id", "monto"],
            postgresql_where=text("estado = 'completada'"),
        ),
        # A customer's completed purchases, counted and summed from the index alone (no heap
        # visit): the totals of every row of a bulk export, and of the detail.
        Index(
            "ix_compras_completadas_cliente",
            "cliente_id",
            postgresql_include=["fecha_compra", "monto"],
            postgresql_where=text("estado = 'completada'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    cliente_id: Mapped[int] = mapped_column(ForeignKey("clientes.id", ondelete="CASCADE"))
    numero_factura: Mapped[str] = mapped_column(String(30), unique=True)
    fecha_compra: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    monto: Mapped[Decimal] = mapped_column(Numeric(15, 2))
    descripcion: Mapped[str] = mapped_column(Text, default="", server_default="")
    estado: Mapped[str] = mapped_column(String(12), default="pendiente")

    cliente: Mapped[Cliente] = relationship()

    def __str__(self) -> str:
        return self.numero_factura


class ClienteTotales(Base):
    """A customer's completed purchases, counted and summed: kept by statement triggers on
    compras (migration 0007), so that an export of many customers reads them (a customer
    without any completed purchase may have no row, or a row of zeros)."""

    __tablename__ = "clientes_totales"

    cliente_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cantidad: Mapped[int] = mapped_column(BigInteger)
    monto: Mapped[Decimal] = mapped_column(Numeric(20, 2))


# The triggers on compras that keep clientes_totales (migration 0007), and the totals counted
# anew: a bulk load disables the first and runs the second once, after its COPY.
CLIENTES_TOTALES_TRIGGERS = (
    "clientes_totales_insert",
    "clientes_totales_update",
    "clientes_totales_delete",
)
CLIENTES_TOTALES_RECOUNT = """
INSERT INTO clientes_totales (cliente_id, cantidad, monto)
SELECT cliente_id, count(*), sum(monto) FROM compras WHERE estado = 'completada'
GROUP BY cliente_id"""


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    # sha256 of the key; the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(20)))
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"


class Job(Base):
    """The durable record of an export/report job: PostgreSQL, not Redis, is the truth."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'canceled', 'expired')",
            name="status_valido",
        ),
        CheckConstraint(
            "type IN ('export_cliente', 'reporte_fidelizacion', 'exportacion_masiva')",
            name="type_valido",
        ),
        Index("ix_jobs_owner_created", "api_key_id", text("created_at DESC"), text("id DESC")),
        # The scheduler's sweeps only ever look at live or expirable jobs.
        Index(
            "ix_jobs_pending",
            "status",
            "updated_at",
            postgresql_where=text("status IN ('queued', 'running', 'succeeded')"),
        ),
        # The few jobs whose message the API could not send: the scheduler's every-interval look.
        Index("ix_jobs_publish_pending", "id", postgresql_where=text("publish_pending")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[int | None] = mapped_column(SmallInteger)
    # A bulk export's rows written so far (SPEC §9); null for the other job types.
    rows_written: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    storage_key: Mapped[str | None] = mapped_column(String(255))
    # The API accepted the job but could not publish its message (Redis down): the scheduler
    # publishes it as soon as Redis answers, instead of after JOB_REPUBLISH_AFTER_SECONDS.
    publish_pending: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"


class JobInput(Base):
    """The id and document lists of a bulk export (SPEC §10), up to 100,000 entries each: kept
    apart from `jobs.params` (which holds their counts and digest), so that reading or listing a
    job never carries them. The worker joins them in SQL; they never go through its memory."""

    __tablename__ = "job_inputs"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    ids: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    # The documents as pairs at the same index: type code (upper case) and number.
    codigos: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    numeros: Mapped[list[str] | None] = mapped_column(ARRAY(Text))


class WebhookEndpoint(Base):
    """A URL that receives the events of one API key's jobs (SPEC §11)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_owner", "api_key_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    api_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    # Kept in clear: the worker signs every delivery with it (HMAC needs the secret itself).
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def __str__(self) -> str:
        return self.url


class WebhookEvent(Base):
    """The outbox: one event for one endpoint, written in the transaction of the job's final
    transition, then delivered (and retried) by the webhooks worker until it succeeds or the
    retry schedule runs out."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_valido"),
        Index("ix_webhook_events_endpoint_created", "endpoint_id", text("created_at DESC")),
        # The sweep only ever looks at events still to deliver.
        Index(
            "ix_webhook_events_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID, primary_key=True, server_default=func.gen_random_uuid()
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    type: Mapped[str] = mapped_column(String(32))
    # The job as the API shows it at the transition: the `data` of the body sent.
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # When its message was last sent to the queue: the sweep sends it again only once that
    # message is presumed lost (Redis emptied, or the publish failed).
    published_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # An attempt under way holds the event until then; a worker killed mid-delivery lets go.
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    endpoint: Mapped[WebhookEndpoint] = relationship()

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"


class WebhookAttempt(Base):
    """One POST of an event: its answer (or error), how long it took, and when the next comes."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    event: Mapped[WebhookEvent] = relationship()

    def __str__(self) -> str:
        return f"attempt {self.attempt} of {self.event_id}"
