"""The `seed_data` command: arguments in, one run, a summary with lookups to try out.

seed_data --clientes 50 [--compras-por-cliente 10] [--seed N] [--reset]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from shared.seed.generation import PURCHASE_DAYS
from shared.seed.loading import BULK_THRESHOLD, Options, Outcome, SeedError, seed
from shared.settings import get_settings, to_libpq_url


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
