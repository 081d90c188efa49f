"""Test data built through the models, each value unique per call so tests never collide."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared.models import Cliente, Compra, TipoDocumento

_sequence = itertools.count(1)


def unique_number(digits: int = 10) -> str:
    """A document number no other test uses: random, so parallel runs never collide either."""
    return str(uuid.uuid4().int)[:digits]


def tipo_documento_id(engine: Engine, codigo: str) -> int:
    with Session(engine) as session:
        return session.execute(
            select(TipoDocumento.id).where(TipoDocumento.codigo == codigo)
        ).scalar_one()


def make_cliente(
    engine: Engine,
    *,
    codigo: str = "CC",
    numero_documento: str | None = None,
    nombre: str = "Ana María",
    apellido: str = "Pérez Gómez",
    correo: str | None = None,
    telefono: str = "+57 300 123 4567",
    activo: bool = True,
    fecha_registro: datetime | None = None,
) -> Cliente:
    numero = numero_documento or unique_number()
    with Session(engine, expire_on_commit=False) as session:
        cliente = Cliente(
            tipo_documento_id=tipo_documento_id(engine, codigo),
            numero_documento=numero,
            nombre=nombre,
            apellido=apellido,
            correo=correo if correo is not None else f"cliente{numero}@example.com",
            telefono=telefono,
            activo=activo,
            fecha_registro=fecha_registro or datetime.now(UTC),
        )
        session.add(cliente)
        session.commit()
        session.refresh(cliente)
        return cliente


def make_compra(
    engine: Engine,
    cliente: Cliente | int,
    *,
    monto: Decimal | str | int = "100000.00",
    estado: str = "completada",
    fecha_compra: datetime | None = None,
    descripcion: str = "Compra de prueba",
    numero_factura: str | None = None,
) -> Compra:
    cliente_id = cliente if isinstance(cliente, int) else cliente.id
    with Session(engine, expire_on_commit=False) as session:
        compra = Compra(
            cliente_id=cliente_id,
            numero_factura=numero_factura or f"T-{uuid.uuid4().hex[:20]}",
            fecha_compra=fecha_compra or datetime.now(UTC) - timedelta(days=next(_sequence) % 20),
            monto=Decimal(monto),
            descripcion=descripcion,
            estado=estado,
        )
        session.add(compra)
        session.commit()
        session.refresh(compra)
        return compra


def make_tipo_documento(
    engine: Engine,
    *,
    codigo: str | None = None,
    nombre: str = "Tipo de prueba",
    activo: bool = True,
) -> TipoDocumento:
    with Session(engine, expire_on_commit=False) as session:
        tipo = TipoDocumento(
            codigo=codigo or "Z" + uuid.uuid4().hex[:4].upper(),
            nombre=nombre,
            descripcion="Creado por una prueba",
            activo=activo,
        )
        session.add(tipo)
        session.commit()
        session.refresh(tipo)
        return tipo
