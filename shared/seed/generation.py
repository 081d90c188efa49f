"""Customers and their purchases as COPY text, drawn chunk by chunk from seeded generators: the
same Plan gives the same rows."""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from shared import documents
from shared.seed.vocabulary import COMPANY_MAILBOXES, DAY, Calendar, Pools, copy_text, times_of_day

CHUNK = 5_000  # customers per generator seed: the unit of determinism and of memory use
PURCHASE_DAYS = 89  # before the start of today: every purchase is within the last 90 days
REGISTRATION_DAYS = (90, 5 * 365)  # customers registered before any of their purchases
INACTIVE_SHARE = 0.05
TYPE_SHARES = (("CC", 0.82), ("NIT", 0.07), ("CE", 0.05), ("PA", 0.04), ("TI", 0.02))
ESTADOS = ("completada",) * 20 + ("pendiente",) * 3 + ("cancelada",) * 2  # 80 / 12 / 8 %
ROUND_PRICE_SHARE = 0.7  # the rest carry cents, as totals with IVA computed do
# Rows per COPY write, ~30 kB: psycopg's writer queue holds 1024 blocks, so at most ~30 MB wait.
COPY_BLOCK_LINES = 250

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


def purchases_bound(clientes: int, compras_por_cliente: int) -> int:
    """More purchases than a run of this size can make (each count is below its span)."""
    most = max(
        math.ceil(2 * compras_por_cliente * profile.purchases_factor + 1) for profile in PROFILES
    )
    return clientes * most + len(LOYAL_PURCHASE_DAYS_AGO)
