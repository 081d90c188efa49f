"""`seed_data`: realistic customers and purchases, bulk-loaded with COPY (SPEC §6).

    seed_data --clientes 50 [--compras-por-cliente 10] [--seed N] [--reset]

How it stays fast enough for 1,000,000 customers and 10,000,000 purchases:
- Faker (about 100 µs a call) only fills small pools of names, phones and e-mail domains, once.
  Each row combines pool entries with a seeded `random.Random` and is formatted straight into
  COPY text: a few microseconds a row.
- Rows stream to PostgreSQL with COPY as they are made, through psycopg's queued writer: a
  thread sends each block while Python formats the next. Memory stays flat at any size.
- Into empty tables, a large load drops the secondary indexes and the unique and foreign-key
  constraints, rebuilds them afterwards from their definitions in shared.models, and uses
  COPY FREEZE (no later vacuum is needed for index-only scans).
Everything happens in one transaction: a run that fails leaves the database as it was.

Determinism: rows are drawn chunk by chunk from generators seeded with (--seed, first new id,
chunk), and dates count back from the start of today in TIMEZONE, so on an empty database the
same seed and size give the same rows all day. Document numbers derive from the customer id
(shared.documents.candidates), so re-runs never collide with rows seeded earlier; a number that
a customer entered by other means already holds is skipped for the id's next candidate.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import secrets
import sys
import time
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from itertools import accumulate, islice
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import psycopg
from faker import Faker
from psycopg.copy import QueuedLibpqWriter
from psycopg.rows import TupleRow
from sqlalchemy import ForeignKeyConstraint, Table, UniqueConstraint
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import (
    AddConstraint,
    CreateIndex,
    DropConstraint,
    DropIndex,
    ExecutableDDLElement,
)

from shared import documents
from shared.models import Base
from shared.settings import get_settings, to_libpq_url

CHUNK = 5_000  # customers per generator seed: the unit of determinism and of memory use
DAY = 86_400
PURCHASE_DAYS = 89  # before the start of today: every purchase is within the last 90 days
REGISTRATION_DAYS = (90, 5 * 365)  # customers registered before any of their purchases
INACTIVE_SHARE = 0.05
TYPE_SHARES = (("CC", 0.82), ("NIT", 0.07), ("CE", 0.05), ("PA", 0.04), ("TI", 0.02))
ESTADOS = ("completada",) * 20 + ("pendiente",) * 3 + ("cancelada",) * 2  # 80 / 12 / 8 %
ROUND_PRICE_SHARE = 0.7  # the rest carry cents, as totals with IVA computed do
BULK_THRESHOLD = 20_000
BULK_MAINTENANCE_WORK_MEM = "512MB"  # index builds sort in memory instead of on disk
# Rows per COPY write, ~30 kB: psycopg's writer queue holds 1024 blocks, so at most ~30 MB wait.
COPY_BLOCK_LINES = 250
# No statement timeout: rebuilding the indexes of a large load takes minutes.
CONNECT: dict[str, Any] = {"connect_timeout": 10, "options": "-c statement_timeout=0"}

# What people buy, cheapest first, with a price range in pesos.
ITEMS = (
    ("Productos de aseo", 20_000, 90_000),
    ("Útiles escolares", 25_000, 150_000),
    ("Accesorios para mascotas", 30_000, 180_000),
    ("Mercado de la semana", 60_000, 250_000),
    ("Menaje de cocina", 40_000, 250_000),
    ("Ropa de cama", 60_000, 300_000),
    ("Cafetera de goteo", 90_000, 300_000),
    ("Ropa de temporada", 80_000, 400_000),
    ("Licuadora de 10 velocidades", 150_000, 400_000),
    ("Tenis deportivos", 120_000, 450_000),
    ("Kit de herramientas", 100_000, 500_000),
    ("Perfume importado", 150_000, 550_000),
    ("Taladro percutor", 180_000, 550_000),
    ("Vinos y licores", 80_000, 600_000),
    ("Horno microondas", 280_000, 650_000),
    ("Audífonos inalámbricos", 120_000, 700_000),
    ("Maleta de viaje mediana", 200_000, 700_000),
    ("Mercado del mes", 300_000, 900_000),
    ("Impresora multifuncional", 350_000, 900_000),
    ("Silla ergonómica de oficina", 400_000, 1_200_000),
    ("Reloj inteligente", 250_000, 1_400_000),
    ("Estufa de empotrar de 4 puestos", 600_000, 1_500_000),
    ("Monitor de 27 pulgadas", 700_000, 1_600_000),
    ("Llantas rin 15, juego de 4", 900_000, 1_800_000),
    ("Tableta de 10 pulgadas", 600_000, 1_800_000),
    ("Celular de gama media", 700_000, 1_900_000),
    ("Colchón doble ortopédico", 800_000, 2_200_000),
    ("Lavadora de carga superior de 18 kg", 1_300_000, 2_400_000),
    ("Bicicleta de montaña rin 29", 900_000, 2_500_000),
    ("Consola de videojuegos", 1_500_000, 2_600_000),
    ("Aire acondicionado de 12.000 BTU", 1_600_000, 3_000_000),
    ("Juego de sala de tres puestos", 1_400_000, 3_200_000),
    ("Nevera no frost de 320 L", 1_700_000, 3_500_000),
    ("Computador portátil", 1_800_000, 3_800_000),
    ("Televisor LED de 55 pulgadas", 1_800_000, 3_900_000),
)


@dataclass(frozen=True, slots=True)
class Profile:
    """How much a kind of customer buys: a share of customers, purchases, and which ITEMS."""

    share: float
    purchases_factor: float  # times --compras-por-cliente, on average
    items: slice


PROFILES = (
    Profile(0.57, 0.7, slice(0, 22)),  # occasional: everyday goods
    Profile(0.39, 1.25, slice(0, 26)),  # regular
    Profile(0.04, 2.5, slice(10, None)),  # frequent big spenders: most loyalty-report rows
)
# The customer the loyalty report always finds (the first of each run): three large completed
# purchases in the last 17 days, ~7.7M COP against the report's default 5M.
LOYAL_PURCHASE_DAYS_AGO = (2, 9, 16)
LOYAL_PURCHASE_PESOS = (2_400_000, 2_700_000)
LOYAL_ITEMS = slice(-5, None)

COMPANY_WORDS = (
    "Inversiones",
    "Distribuidora",
    "Comercializadora",
    "Construcciones",
    "Transportes",
    "Grupo",
    "Industrias",
    "Soluciones",
    "Servicios",
    "Agropecuaria",
    "Ferretería",
    "Droguería",
    "Importadora",
    "Consultores",
    "Alimentos",
    "Textiles",
)
LEGAL_FORMS = ("S.A.S.",) * 6 + ("S.A.", "Ltda.")
COMPANY_MAILBOXES = ("contacto", "ventas", "facturacion", "gerencia", "compras")
MOBILE_PHONE = re.compile(r"\+57 3\d\d \d{3} \d\d \d\d")  # one of Faker es_CO's formats

COPY_CLIENTES = (
    "COPY clientes (id, tipo_documento_id, numero_documento, nombre, apellido, correo,"
    " telefono, fecha_registro, activo) FROM STDIN"
)
COPY_COMPRAS = (
    "COPY compras (id, cliente_id, numero_factura, fecha_compra, monto, descripcion, estado)"
    " FROM STDIN"
)


class SeedError(Exception):
    """A problem the user can act on, reported in one line."""


# Vocabulary.


def copy_text(value: str) -> str:
    """value as a COPY text-format field: backslash, tab, newline and carriage return escaped."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def email_word(value: str) -> str:
    """`María José` → `mariajose`: what goes into an e-mail address."""
    ascii_only = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return "".join(character for character in ascii_only.lower() if character.isalnum())


Word = tuple[str, str]  # (as stored, COPY-escaped; as in an e-mail address)


def _words(values: Sequence[str]) -> tuple[Word, ...]:
    return tuple((copy_text(value), email_word(value)) for value in values)


@dataclass(frozen=True, slots=True)
class Pools:
    """Faker's es_CO vocabulary, sampled once: Faker takes ~100 µs a call, a row a few µs."""

    # Sampled, so that common names repeat as often as Faker has them. Women's and men's apart,
    # so that a second given name matches the first.
    first_names: tuple[tuple[Word, ...], tuple[Word, ...]]
    last_names: tuple[Word, ...]
    email_domains: tuple[str, ...]
    phone_prefixes: tuple[str, ...]  # "+57 310 555": each row adds its own last four digits
    company_words: tuple[Word, ...]
    legal_forms: tuple[str, ...]


def build_pools(seed: int) -> Pools:
    fake = Faker("es_CO")
    fake.seed_instance(seed)
    mobiles = (phone for _ in range(50_000) if MOBILE_PHONE.fullmatch(phone := fake.phone_number()))
    return Pools(
        first_names=(
            _words([fake.first_name_female() for _ in range(500)]),
            _words([fake.first_name_male() for _ in range(500)]),
        ),
        last_names=_words([fake.last_name() for _ in range(1000)]),
        email_domains=tuple(copy_text(fake.free_email_domain()) for _ in range(100)),
        phone_prefixes=tuple(copy_text(phone[:11]) for phone in islice(mobiles, 200)),
        company_words=_words(COMPANY_WORDS),
        legal_forms=tuple(copy_text(form) for form in LEGAL_FORMS),
    )


# Time: COPY text timestamps from lookup tables, far faster than datetime formatting per row.


@cache
def times_of_day() -> tuple[str, ...]:
    return tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY))


@dataclass(frozen=True, slots=True)
class Calendar:
    """Instants as epoch seconds before `end` (the start of today in TIMEZONE), shown in UTC."""

    end: int
    first_day: int  # epoch day of dates[0]
    dates: tuple[str, ...]

    @classmethod
    def ending(cls, today_start: datetime, days: int) -> Calendar:
        end = int(today_start.timestamp())
        first_day = (end - days * DAY) // DAY
        epoch = date(1970, 1, 1)
        dates = tuple(
            (epoch + timedelta(days=day)).isoformat() for day in range(first_day, end // DAY + 1)
        )
        return cls(end, first_day, dates)

    def text(self, instant: int) -> str:
        day, second = divmod(instant, DAY)
        return f"{self.dates[day - self.first_day]} {times_of_day()[second]}+00"


# Generation.


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run generates: sizes, the seed, and where the new ids and invoices start."""

    clientes: int
    compras_por_cliente: int
    seed: int
    first_cliente_id: int
    first_compra_id: int
    first_factura: int
    tipos: dict[str, int]  # tipos_documento.codigo → id
    calendar: Calendar

    @property
    def chunks(self) -> range:
        return range(math.ceil(self.clientes / CHUNK))

    def cliente_ids(self, chunk: int) -> range:
        first = self.first_cliente_id + chunk * CHUNK
        return range(first, min(first + CHUNK, self.first_cliente_id + self.clientes))

    def rng(self, table: str, chunk: int) -> random.Random:
        # A str seed is hashed with SHA-512: stable across processes, unlike hash().
        return random.Random(f"{self.seed}:{self.first_cliente_id}:{table}:{chunk}")


@dataclass(slots=True)
class NewCliente:
    id: int
    codigo: str
    pick: float  # chooses the number among documents.candidates
    numero: str
    activo: bool
    fields: str  # the COPY fields after numero_documento

    def line(self, tipos: dict[str, int]) -> str:
        return f"{self.id}\t{tipos[self.codigo]}\t{self.numero}\t{self.fields}\n"


def _pick(cumulative_shares: Sequence[float], draw: float) -> int:
    """The index of the share that draw, in [0, 1), falls in."""
    return min(bisect_right(cumulative_shares, draw), len(cumulative_shares) - 1)


TYPE_CODES = tuple(codigo for codigo, _ in TYPE_SHARES)
TYPE_CUMULATIVE_SHARES = tuple(accumulate(share for _, share in TYPE_SHARES))


def clientes_chunk(plan: Plan, pools: Pools, chunk: int) -> list[NewCliente]:
    rng = plan.rng("clientes", chunk)
    rand = rng.random
    (women, men), last_names = pools.first_names, pools.last_names
    domains, prefixes = pools.email_domains, pools.phone_prefixes
    end, registration_low, registration_span = (
        plan.calendar.end,
        REGISTRATION_DAYS[0] * DAY,
        (REGISTRATION_DAYS[1] - REGISTRATION_DAYS[0]) * DAY,
    )
    rows = []
    for cliente_id in plan.cliente_ids(chunk):
        loyal = cliente_id == plan.first_cliente_id
        codigo = "CC" if loyal else TYPE_CODES[_pick(TYPE_CUMULATIVE_SHARES, rand())]
        pick = rand()
        numero = next(documents.candidates(codigo, cliente_id, pick), None)
        if numero is None:  # this type's number space ends below this id: a cédula instead
            codigo, numero = "CC", next(documents.candidates("CC", cliente_id, pick))
        if codigo == "NIT":
            word, surname = rng.choice(pools.company_words), rng.choice(last_names)
            nombre, apellido = f"{word[0]} {surname[0]}", rng.choice(pools.legal_forms)
            correo = f"{rng.choice(COMPANY_MAILBOXES)}@{word[1]}{surname[1]}.com.co"
        else:
            first_names = women if rand() < 0.5 else men
            first = first_names[int(rand() * len(first_names))]
            last = last_names[int(rand() * len(last_names))]
            second_last = last_names[int(rand() * len(last_names))]
            nombre = first[0]
            if rand() < 0.3:
                nombre += " " + first_names[int(rand() * len(first_names))][0]
            apellido = f"{last[0]} {second_last[0]}" if rand() < 0.9 else last[0]
            domain = domains[int(rand() * len(domains))]
            style = rand()
            if style < 0.4:
                correo = f"{first[1]}.{last[1]}@{domain}"
            elif style < 0.8:
                correo = f"{first[1]}{last[1]}{int(rand() * 100)}@{domain}"
            else:
                correo = f"{first[1][0]}{last[1]}{int(rand() * 1000)}@{domain}"
        digits = int(rand() * 10_000)
        telefono = f"{prefixes[int(rand() * len(prefixes))]} {digits // 100:02d} {digits % 100:02d}"
        registro = plan.calendar.text(end - registration_low - int(rand() * registration_span))
        activo = loyal or rand() >= INACTIVE_SHARE
        fields = f"{nombre}\t{apellido}\t{correo}\t{telefono}\t{registro}\t{'t' if activo else 'f'}"
        rows.append(NewCliente(cliente_id, codigo, pick, numero, activo, fields))
    return rows


def compras_blocks(plan: Plan, on_chunk: Callable[[int], None]) -> Iterator[str]:
    """Purchases of every new customer as blocks of COPY text, in id order.

    The hot loop of a large load (10,000,000 rows): each line is one f-string of precomputed
    pieces (a date, a time with what follows it, a description with its estado).
    """
    date_texts = [f"{day} " for day in plan.calendar.dates]
    time_texts = [f"{time_of_day}+00\t" for time_of_day in times_of_day()]
    endings = [
        [f"\t{copy_text(description)}\t{estado}\n" for estado in ESTADOS]
        for description, _, _ in ITEMS
    ]
    log_low = [math.log(low) for _, low, _ in ITEMS]
    log_width = [math.log(high) - math.log(low) for _, low, high in ITEMS]
    cumulative_shares = list(accumulate(profile.share for profile in PROFILES))
    profiles = []
    for profile in PROFILES:
        item_low, item_high, _ = profile.items.indices(len(ITEMS))
        # A uniform count in [0, 2 × mean]: some customers buy nothing, some twice the average.
        count_span = 2 * plan.compras_por_cliente * profile.purchases_factor + 1
        profiles.append((count_span, item_low, item_high - item_low))
    loyal_item_low, loyal_item_high, _ = LOYAL_ITEMS.indices(len(ITEMS))
    loyal_low, loyal_high = LOYAL_PURCHASE_PESOS
    end, span, first_day = plan.calendar.end, PURCHASE_DAYS * DAY, plan.calendar.first_day
    exp, completada = math.exp, ESTADOS.index("completada")
    compra_id = plan.first_compra_id
    factura_offset = plan.first_factura - plan.first_compra_id
    for chunk in plan.chunks:
        rand = plan.rng("compras", chunk).random
        lines: list[str] = []
        append = lines.append
        for cliente_id in plan.cliente_ids(chunk):
            middle = f"\t{cliente_id}\tFV-"
            count_span, item_low, item_span = profiles[_pick(cumulative_shares, rand())]
            for _ in range(int(rand() * count_span)):
                day, second = divmod(end - 1 - int(rand() * span), DAY)
                item = item_low + int(rand() * item_span)
                cents = int(exp(log_low[item] + rand() * log_width[item]) * 100)
                if rand() < ROUND_PRICE_SHARE:
                    cents -= cents % 10_000
                append(
                    f"{compra_id}{middle}{compra_id + factura_offset:08d}\t"
                    f"{date_texts[day - first_day]}{time_texts[second]}"
                    f"{cents // 100}.{cents % 100:02d}{endings[item][int(rand() * len(ESTADOS))]}"
                )
                compra_id += 1
            if cliente_id == plan.first_cliente_id:
                for days_ago in LOYAL_PURCHASE_DAYS_AGO:
                    day, second = divmod(end - days_ago * DAY - int(rand() * DAY), DAY)
                    item = loyal_item_low + int(rand() * (loyal_item_high - loyal_item_low))
                    pesos = loyal_low + int(rand() * (loyal_high - loyal_low))
                    append(
                        f"{compra_id}{middle}{compra_id + factura_offset:08d}\t"
                        f"{date_texts[day - first_day]}{time_texts[second]}"
                        f"{pesos}.00{endings[item][completada]}"
                    )
                    compra_id += 1
            if len(lines) >= COPY_BLOCK_LINES:
                yield "".join(lines)
                lines.clear()
        if lines:
            yield "".join(lines)
        on_chunk(chunk)


# Loading.

Ddl = list[tuple[str, str]]  # (what, SQL)
Cursor = psycopg.Cursor[TupleRow]


def _bulk_ddl() -> tuple[Ddl, Ddl]:
    """What a bulk COPY drops first and rebuilds after, as shared.models defines it.

    Every index and every unique and foreign-key constraint of clientes and compras; the primary
    keys (the foreign key needs them) and the cheap check constraints stay.
    """
    drops: list[tuple[str, ExecutableDDLElement]] = []
    indexes: list[tuple[str, ExecutableDDLElement]] = []
    uniques: list[tuple[str, ExecutableDDLElement]] = []
    foreign_keys: list[tuple[str, ExecutableDDLElement]] = []
    for table_name in ("clientes", "compras"):
        table: Table = Base.metadata.tables[table_name]
        for constraint in sorted(table.constraints, key=lambda constraint: str(constraint.name)):
            if isinstance(constraint, ForeignKeyConstraint | UniqueConstraint):
                drops.append((str(constraint.name), DropConstraint(constraint)))
                rebuilt = foreign_keys if isinstance(constraint, ForeignKeyConstraint) else uniques
                rebuilt.append((str(constraint.name), AddConstraint(constraint)))
        for index in sorted(table.indexes, key=lambda index: str(index.name)):
            drops.append((str(index.name), DropIndex(index)))
            indexes.append((str(index.name), CreateIndex(index)))
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    def compiled(ddl: list[tuple[str, ExecutableDDLElement]]) -> Ddl:
        return [(name, str(element.compile(dialect=dialect)).strip()) for name, element in ddl]

    # Foreign keys last: each is then checked against the finished tables in a single join.
    return compiled(drops), compiled(indexes + uniques + foreign_keys)


@dataclass(frozen=True, slots=True)
class Options:
    clientes: int
    compras_por_cliente: int
    seed: int
    reset: bool
    bulk_threshold: int


@dataclass(frozen=True, slots=True)
class Existing:
    """Where the tables stand before the load: new ids continue after these."""

    last_cliente_id: int = 0
    last_compra_id: int = 0

    @property
    def empty(self) -> bool:
        return self.last_cliente_id == 0 and self.last_compra_id == 0

    @classmethod
    def read(cls, cursor: Cursor) -> Existing:
        return cls(
            _scalar(cursor, "SELECT COALESCE(max(id), 0) FROM clientes"),
            _scalar(cursor, "SELECT COALESCE(max(id), 0) FROM compras"),
        )


def purchases_bound(clientes: int, compras_por_cliente: int) -> int:
    """More purchases than a run of this size can make (each count is below its span)."""
    most = max(
        math.ceil(2 * compras_por_cliente * profile.purchases_factor + 1) for profile in PROFILES
    )
    return clientes * most + len(LOYAL_PURCHASE_DAYS_AGO)


def _free_facturas(cursor: Cursor, first: int, count: int) -> int:
    """The first of `count` consecutive invoice numbers, from first on, that no row holds.

    Seeded invoices are FV- and the purchase id, so the numbers after the highest id are free,
    unless someone typed an FV- number in by hand: then start after it. Each check is one range
    scan of the unique index per number width (same-width digit strings sort like numbers in
    any collation; other widths in the range are filtered out).
    """
    while True:
        last = first + count - 1
        taken = None
        for width in range(len(f"{first:08d}"), len(f"{last:08d}") + 1):
            low = max(first, 10 ** (width - 1) if width > 8 else 0)
            high = min(last, 10**width - 1)
            row = cursor.execute(
                "SELECT max(numero_factura) FROM compras WHERE numero_factura BETWEEN %s AND %s"
                " AND length(numero_factura) = %s AND numero_factura ~ '^FV-[0-9]+$'",
                (f"FV-{low:0{width}d}", f"FV-{high:0{width}d}", width + 3),
            ).fetchone()
            if row is not None and row[0] is not None:
                taken = int(row[0][3:])
        if taken is None:
            return first
        first = taken + 1


def _scalar(cursor: Cursor, query: str) -> int:
    row = cursor.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _tipos(cursor: Cursor) -> dict[str, int]:
    rows = cursor.execute("SELECT codigo, id FROM tipos_documento").fetchall()
    tipos = {str(codigo): int(tipo_id) for codigo, tipo_id in rows}
    missing = [codigo for codigo in TYPE_CODES if codigo not in tipos]
    if missing:
        raise SeedError(f"tipos_documento lacks {', '.join(missing)}: run `alembic upgrade head`")
    return tipos


def _claim_free_numbers(lookup: Cursor, tipos: dict[str, int], rows: list[NewCliente]) -> None:
    """Move customers whose number another customer (entered by hand, say) already holds to
    their next candidate. Seeded customers never collide with each other: see the module doc."""
    pending = rows
    while pending:
        taken: set[tuple[str, str]] = set()
        for codigo in {row.codigo for row in pending}:
            numeros = [row.numero for row in pending if row.codigo == codigo]
            lookup.execute(
                "SELECT numero_documento FROM clientes"
                " WHERE tipo_documento_id = %s AND numero_documento = ANY(%s)",
                (tipos[codigo], numeros),
            )
            taken.update((codigo, str(numero)) for (numero,) in lookup)
        pending = [row for row in pending if (row.codigo, row.numero) in taken]
        for row in pending:
            alternatives = list(documents.candidates(row.codigo, row.id, row.pick))
            position = alternatives.index(row.numero) + 1
            if position == len(alternatives):
                raise SeedError(f"every {row.codigo} number for customer id {row.id} is taken")
            row.numero = alternatives[position]


class Progress:
    """A one-line progress bar on stderr; without a terminal, a plain line at each quarter."""

    WIDTH = 30

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr) -> None:
        self.label, self.total, self.stream = label, max(total, 1), stream
        self.interactive = stream.isatty()
        self.shown = -1 if self.interactive else 0  # the first plain line at 25 %
        self.started = time.perf_counter()

    def update(self, done: int) -> None:
        percent = min(100, done * 100 // self.total)
        step = percent if self.interactive else percent // 25 * 25
        if step == self.shown:
            return
        self.shown = step
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "." * (self.WIDTH - filled)
        elapsed = time.perf_counter() - self.started
        text = f"{self.label:<10} [{bar}] {percent:3d}% {done:,}/{self.total:,} {elapsed:.1f}s"
        if self.interactive:
            self.stream.write("\r" + text + ("\n" if percent == 100 else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _clientes_blocks(
    plan: Plan, lookup: Cursor | None, examples: list[NewCliente]
) -> Iterator[str]:
    """New customers as COPY text. The first two of them go to examples (the loyal one first)."""
    pools = build_pools(plan.seed)
    progress = Progress("customers", plan.clientes)
    for chunk in plan.chunks:
        rows = clientes_chunk(plan, pools, chunk)
        if lookup is not None:
            _claim_free_numbers(lookup, plan.tipos, rows)
        if chunk == 0:
            examples += [rows[0], next((row for row in rows[1:] if row.activo), rows[0])]
        for start in range(0, len(rows), COPY_BLOCK_LINES):
            yield "".join(row.line(plan.tipos) for row in rows[start : start + COPY_BLOCK_LINES])
        progress.update(plan.cliente_ids(chunk).stop - plan.first_cliente_id)


@dataclass(slots=True)
class Streamed:
    rows: int = 0
    seconds: float = 0.0
    waiting: float = 0.0  # of which Python waited for the server rather than generating rows


def _stream(cursor: Cursor, statement: str, blocks: Iterator[str]) -> Streamed:
    """COPY blocks through psycopg's queued writer: a thread sends each block to the server while
    Python formats the next one (write only blocks when the queue is full)."""
    streamed = Streamed()
    started = time.perf_counter()
    with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        for block in blocks:
            streamed.rows += block.count("\n")
            before = time.perf_counter()
            copy.write(block)
            streamed.waiting += time.perf_counter() - before
        before = time.perf_counter()
    streamed.waiting += time.perf_counter() - before  # the queue draining at the end
    streamed.seconds = time.perf_counter() - started
    return streamed


def _rebuild(cursor: Cursor, ddl: Ddl) -> float:
    """Recreate what a bulk load dropped, each reported on stderr: at 10,000,000 rows it takes
    a minute or two."""
    started = time.perf_counter()
    for name, statement in ddl:
        before = time.perf_counter()
        cursor.execute(statement)
        print(f"rebuilt {name}: {time.perf_counter() - before:.1f}s", file=sys.stderr)
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Outcome:
    plan: Plan
    bulk: bool
    clientes: Streamed
    compras: Streamed
    rebuild_seconds: float
    analyze_seconds: float
    clientes_total: int
    compras_total: int
    loyal: NewCliente
    example: NewCliente


def _prepare(cursor: Cursor, options: Options) -> tuple[Plan, Existing, bool]:
    """Lock the tables, see where new ids start, and clear the way for a bulk load if it is one."""
    # Concurrent runs wait for each other (they would pick the same new ids); reads go on.
    cursor.execute("LOCK TABLE clientes, compras IN SHARE ROW EXCLUSIVE MODE")
    tipos = _tipos(cursor)
    existing = Existing() if options.reset else Existing.read(cursor)
    bulk = existing.empty and options.clientes >= options.bulk_threshold
    if options.reset or bulk:
        # Truncating in this transaction also lets COPY FREEZE store the rows frozen.
        restart = " RESTART IDENTITY" if options.reset else ""
        cursor.execute(f"TRUNCATE clientes, compras{restart}")
    if bulk:
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{BULK_MAINTENANCE_WORK_MEM}'")
        for _, statement in _bulk_ddl()[0]:
            cursor.execute(statement)
    today_start = datetime.now(ZoneInfo(get_settings().timezone)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    plan = Plan(
        clientes=options.clientes,
        compras_por_cliente=options.compras_por_cliente,
        seed=options.seed,
        first_cliente_id=existing.last_cliente_id + 1,
        first_compra_id=existing.last_compra_id + 1,
        first_factura=_free_facturas(
            cursor,
            existing.last_compra_id + 1,
            purchases_bound(options.clientes, options.compras_por_cliente),
        ),
        tipos=tipos,
        calendar=Calendar.ending(today_start, REGISTRATION_DAYS[1]),
    )
    return plan, existing, bulk


def seed(database_url: str, options: Options) -> Outcome:
    """Generate and load one run in a single transaction."""
    with psycopg.connect(database_url, application_name="seed_data", **CONNECT) as connection:
        cursor = connection.cursor()
        plan, existing, bulk = _prepare(cursor, options)
        freeze = " WITH (FREEZE)" if bulk else ""
        examples: list[NewCliente] = []
        with ExitStack() as stack:
            lookup = None
            if not existing.empty:
                # Numbers held by customers entered by other means are looked up on a second
                # connection, the first being busy with COPY. What it sees, the committed rows,
                # is all that can collide.
                lookup = stack.enter_context(
                    psycopg.connect(database_url, autocommit=True, **CONNECT)
                ).cursor()
            clientes = _stream(
                cursor, COPY_CLIENTES + freeze, _clientes_blocks(plan, lookup, examples)
            )
        progress = Progress("purchases", plan.clientes)
        compras = _stream(
            cursor,
            COPY_COMPRAS + freeze,
            compras_blocks(
                plan,
                lambda chunk: progress.update(plan.cliente_ids(chunk).stop - plan.first_cliente_id),
            ),
        )
        rebuild_seconds = _rebuild(cursor, _bulk_ddl()[1]) if bulk else 0.0
        # Rows added later by other means take the ids after the seeded ones.
        for table, last_id in (
            ("clientes", plan.first_cliente_id + clientes.rows - 1),
            ("compras", plan.first_compra_id + compras.rows - 1),
        ):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (table, last_id))
        started = time.perf_counter()
        cursor.execute("ANALYZE clientes, compras")
        analyze_seconds = time.perf_counter() - started
        return Outcome(
            plan=plan,
            bulk=bulk,
            clientes=clientes,
            compras=compras,
            rebuild_seconds=rebuild_seconds,
            analyze_seconds=analyze_seconds,
            clientes_total=_scalar(cursor, "SELECT count(*) FROM clientes"),
            compras_total=_scalar(cursor, "SELECT count(*) FROM compras"),
            loyal=examples[0],
            example=examples[1],
        )


# The command line.


def _whole_number(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number ≥ {minimum}, got {value!r}")
        return number

    return parse


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="seed_data",
        description="Fill the database with realistic customers and purchases (COPY bulk load).",
    )
    parser.add_argument(
        "--clientes",
        metavar="N",
        type=_whole_number(1),
        default=50,
        help="customers to add (default 50)",
    )
    parser.add_argument(
        "--compras-por-cliente",
        metavar="N",
        type=_whole_number(0),
        default=10,
        help="purchases per customer on average, over the last 90 days (default 10)",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=_whole_number(0),
        help="make the data reproducible: the same seed and size on an empty database give the"
        " same rows (default: a random seed, printed at the end)",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="delete every customer and purchase and restart their ids first",
    )
    parser.add_argument(
        "--bulk-threshold",
        metavar="N",
        type=_whole_number(1),
        default=BULK_THRESHOLD,
        help="loads of at least this many customers into empty tables drop the indexes and"
        f" constraints and rebuild them after (default {BULK_THRESHOLD:,})",
    )
    args = parser.parse_args(argv)
    return Options(
        clientes=args.clientes,
        compras_por_cliente=args.compras_por_cliente,
        seed=secrets.randbelow(1_000_000) if args.seed is None else args.seed,
        reset=args.reset,
        bulk_threshold=args.bulk_threshold,
    )


def _summary(outcome: Outcome, elapsed: float) -> str:
    plan, clientes, compras = outcome.plan, outcome.clientes, outcome.compras
    timezone = get_settings().timezone
    today = datetime.fromtimestamp(plan.calendar.end, ZoneInfo(timezone)).date()
    first_date, last_date = today - timedelta(days=PURCHASE_DAYS), today - timedelta(days=1)
    rebuilt = f" · indexes and constraints {outcome.rebuild_seconds:.1f}s" if outcome.bulk else ""
    lines = [
        f"Added {clientes.rows:,} customers and {compras.rows:,} purchases in {elapsed:.1f}s"
        f" (seed {plan.seed}).",
        f"The database now holds {outcome.clientes_total:,} customers and"
        f" {outcome.compras_total:,} purchases; the new purchases are dated {first_date} to"
        f" {last_date} ({timezone}).",
        f"Time: customers {clientes.seconds:.1f}s and purchases {compras.seconds:.1f}s, of which"
        f" {clientes.waiting + compras.waiting:.1f}s waiting for PostgreSQL{rebuilt}"
        f" · analyze {outcome.analyze_seconds:.1f}s",
        "Try a lookup:",
    ]
    for label, cliente in (
        ("a customer", outcome.example),
        ("one the loyalty report lists", outcome.loyal),
    ):
        lines += [
            f"  {label}: {cliente.codigo} {cliente.numero}",
            f"    GET /api/clientes/buscar/?tipo_documento={cliente.codigo}"
            f"&numero_documento={cliente.numero}",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = time.perf_counter()
    try:
        outcome = seed(to_libpq_url(get_settings().database_url), options)
    except SeedError as error:
        print(f"seed_data: {error}", file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable as error:
        print(
            f"seed_data: {error.diag.message_primary}: run `alembic upgrade head` first",
            file=sys.stderr,
        )
        return 1
    except psycopg.OperationalError as error:
        print(f"seed_data: cannot use PostgreSQL: {str(error).strip()}", file=sys.stderr)
        return 1
    print(_summary(outcome, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
