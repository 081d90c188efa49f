"""Test data built through the models, unique by construction so tests never see each other's.

Every value that another test could match (a document number, an invoice number, a type code,
a loyalty report's window) comes from a counter shared by the whole test process, so no two
calls in a run, from whatever file, get the same one. Each counter starts at a random point per
run, so that tests cannot come to depend on particular values.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared import documents
from shared.models import Cliente, Compra, TipoDocumento
from shared.settings import get_settings

_sequence = itertools.count(1)
_RUN = random.Random()

# Document numbers: one ordinal per call, for every type, drawn through the seed's own generator
# (shared.documents.candidates), always from each type's first block. Distinct ordinals give
# distinct, well-formed numbers; and across types, the first blocks either have disjoint shapes
# (7 digits for CE, a check digit for NIT, letters for PA) or are the same bijection (CC and TI),
# so a number is unique in the whole run whatever its type. The CE block (9,000,000 numbers) bounds
# the ordinals: a run starts somewhere in its first 8,000,000, leaving a million per run.
_document_ordinals = itertools.count(_RUN.randrange(8_000_000))
_invoice_numbers = itertools.count(_RUN.randrange(10**8))
_type_codes = itertools.count(_RUN.randrange(36**3))


def unique_number(codigo: str = "CC") -> str:
    """A well-formed document number of type codigo that no other call in this run returns."""
    return next(documents.candidates(codigo, next(_document_ordinals), pick=0.0))


def unique_digits(count: int = 9) -> str:
    """count digits (7 or more: a run's ordinals stay below 10**7) that no other call in this
    run returns, for a phone or an e-mail address that must be no one else's."""
    if count < 7:
        raise ValueError("fewer than 7 digits cannot be unique by construction")
    return f"{next(_document_ordinals):0{count}d}"


def _base36(number: int, width: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = ""
    for _ in range(width):
        number, digit = divmod(number, 36)
        text = digits[digit] + text
    return text


# Loyalty report windows: disjoint spans of days carved, one after another, out of 1920-1969,
# an era in which no other test buys anything (the factories buy "now", a few tests on fixed
# days of 2020-2026). A gap follows each window, so a purchase just outside one (at hasta,
# or just before desde) lands in no other.
BUSINESS_TZ = ZoneInfo(get_settings().timezone)
_REPORT_ERA = (date(1920, 1, 1), date(1970, 1, 1))
_WINDOW_GAP_DAYS = 2
_window_lock = threading.Lock()
_next_window_day = _REPORT_ERA[0] + timedelta(days=_RUN.randrange(5 * 365))


@dataclass(frozen=True)
class ReportWindow:
    """[desde, hasta): whole days, midnight to midnight in the business timezone."""

    desde: datetime
    hasta: datetime

    @property
    def middle(self) -> datetime:
        return self.desde + (self.hasta - self.desde) / 2

    def params(self) -> dict[str, str]:
        """As the report endpoint takes them: dates, meaning midnight in the business timezone."""
        return {"desde": self.desde.date().isoformat(), "hasta": self.hasta.date().isoformat()}


def report_window(days: int = 10) -> ReportWindow:
    """A window of days that no other window of this run overlaps or touches."""
    global _next_window_day
    with _window_lock:
        first = _next_window_day
        _next_window_day = first + timedelta(days=days + _WINDOW_GAP_DAYS)
    if _next_window_day > _REPORT_ERA[1]:
        raise RuntimeError("the report era is used up: shorter windows, or a wider era")
    desde = datetime.combine(first, time(), BUSINESS_TZ)
    return ReportWindow(desde, datetime.combine(first + timedelta(days=days), time(), BUSINESS_TZ))


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
    numero = numero_documento or unique_number(codigo)
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
            numero_factura=numero_factura or f"T-{next(_invoice_numbers):010d}",
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
            codigo=codigo or "Z" + _base36(next(_type_codes), 3),
            nombre=nombre,
            descripcion="Creado por una prueba",
            activo=activo,
        )
        session.add(tipo)
        session.commit()
        session.refresh(tipo)
        return tipo
