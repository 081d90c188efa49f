"""What seeded rows are made of, prepared once: Faker's es_CO pools and a calendar of timestamps,
all as COPY text."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from itertools import islice

from faker import Faker

DAY = 86_400

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
