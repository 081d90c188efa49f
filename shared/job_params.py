"""Parameters of export and report jobs, parsed and validated in one place.

The API parses what a client sent (query string or JSON body) into `ExportParams` /
`ReportParams` and stores their `as_json()` in `jobs.params`; the worker reads them back with
`from_json`, which validates again, so both services agree on what a job means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

FORMATOS_EXPORT = ("csv", "excel", "txt")
FORMATOS_REPORTE = ("excel", "csv")
FORMATO_ALIASES = {"xlsx": "excel"}
DEFAULT_FORMATO_EXPORT = "csv"
DEFAULT_FORMATO_REPORTE = "excel"
DEFAULT_MONTO_MINIMO = Decimal("5000000")
DEFAULT_REPORT_WINDOW = timedelta(days=30)
# compras.monto is numeric(15,2): a larger threshold could never be met by one purchase anyway.
MAX_MONTO = Decimal("9999999999999.99")
CENTS = Decimal("0.01")
# The moments a report may name: every date in between survives the time zone arithmetic here
# and in PostgreSQL; one outside is refused by name, never an OverflowError.
EARLIEST_MOMENT = date(1900, 1, 1)
LATEST_MOMENT = date(3000, 1, 1)

# In a query string an unencoded '+' arrives as a space: "…T08:00:00 05:00" meant "+05:00".
_OFFSET_SENT_AS_SPACE = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class InvalidParams(ValueError):
    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in self.errors))


@dataclass(frozen=True, slots=True)
class ExportParams:
    cliente_id: int
    formato: str

    def as_json(self) -> dict[str, Any]:
        return {"cliente_id": self.cliente_id, "formato": self.formato}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportParams:
        cliente_id = data.get("cliente_id")
        if not isinstance(cliente_id, int) or isinstance(cliente_id, bool) or cliente_id < 1:
            raise InvalidParams([FieldError("cliente_id", "must be a positive integer")])
        return parse_export(cliente_id, formato=data.get("formato"))


@dataclass(frozen=True, slots=True)
class ReportParams:
    desde: datetime  # inclusive
    hasta: datetime  # exclusive
    monto_minimo: Decimal
    formato: str

    def as_json(self) -> dict[str, Any]:
        return {
            "desde": self.desde.isoformat(),
            "hasta": self.hasta.isoformat(),
            "monto_minimo": str(self.monto_minimo),
            "formato": self.formato,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], timezone: tzinfo) -> ReportParams:
        missing = [name for name in ("desde", "hasta") if not data.get(name)]
        if missing:
            raise InvalidParams([FieldError(name, "is missing") for name in missing])
        return parse_report(
            desde=data["desde"],
            hasta=data["hasta"],
            monto_minimo=data.get("monto_minimo"),
            formato=data.get("formato"),
            now=datetime.now(timezone),
            timezone=timezone,
        )


def parse_export(cliente_id: int, *, formato: object) -> ExportParams:
    errors: list[FieldError] = []
    parsed = _formato(formato, FORMATOS_EXPORT, DEFAULT_FORMATO_EXPORT, errors)
    if errors:
        raise InvalidParams(errors)
    return ExportParams(cliente_id=cliente_id, formato=parsed)


def parse_report(
    *,
    desde: object,
    hasta: object,
    monto_minimo: object,
    formato: object,
    now: datetime,
    timezone: tzinfo,
    max_days: int | None = None,
) -> ReportParams:
    """Defaults: `hasta` is now, `desde` is 30 days before `hasta`. A date means midnight at the
    start of that day in `timezone`; a datetime without an offset is read in `timezone` too.
    With `max_days` (the API's REPORT_MAX_DAYS), a longer window is refused; a job already
    accepted is not checked again against it (the worker passes none)."""
    errors: list[FieldError] = []
    parsed_formato = _formato(formato, FORMATOS_REPORTE, DEFAULT_FORMATO_REPORTE, errors)
    parsed_monto = _monto(monto_minimo, errors)
    given_desde = _moment("desde", desde, timezone, errors)
    given_hasta = _moment("hasta", hasta, timezone, errors)
    if errors:
        raise InvalidParams(errors)
    end = given_hasta or now.replace(microsecond=0).astimezone(timezone)
    start = given_desde or end - DEFAULT_REPORT_WINDOW
    # The field the client can change to fix the window: desde if given, else hasta.
    field = "desde" if given_desde else "hasta"
    if start >= end:
        raise InvalidParams(
            [
                FieldError(
                    field,
                    f"desde ({start.isoformat()}) must be before hasta ({end.isoformat()}): "
                    "desde is inclusive, hasta exclusive",
                )
            ]
        )
    if max_days is not None and end - start > timedelta(days=max_days):
        raise InvalidParams(
            [
                FieldError(
                    field,
                    f"the report's window (desde {start.isoformat()} to hasta "
                    f"{end.isoformat()}) spans more than {max_days} days",
                )
            ]
        )
    return ReportParams(desde=start, hasta=end, monto_minimo=parsed_monto, formato=parsed_formato)


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _formato(value: object, allowed: Sequence[str], default: str, errors: list[FieldError]) -> str:
    if _absent(value):
        return default
    normalised = str(value).strip().lower()
    normalised = FORMATO_ALIASES.get(normalised, normalised)
    if normalised in allowed:
        return normalised
    aliases = [f"{alias} (= {name})" for alias, name in FORMATO_ALIASES.items() if name in allowed]
    errors.append(
        FieldError("formato", f"must be one of {', '.join([*allowed, *aliases])}; got {value!r}")
    )
    return default


def _monto(value: object, errors: list[FieldError]) -> Decimal:
    if _absent(value):
        return DEFAULT_MONTO_MINIMO.quantize(CENTS)
    problem = "must be a decimal number of pesos such as 5000000 or 5000000.50"
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        errors.append(FieldError("monto_minimo", problem))
        return DEFAULT_MONTO_MINIMO
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        errors.append(FieldError("monto_minimo", f"{problem}; got {value!r}"))
        return DEFAULT_MONTO_MINIMO
    if not amount.is_finite():
        problem = f"{problem}; got {value!r}"
    elif amount < 0:
        problem = f"must be ≥ 0; got {value!r}"
    elif amount > MAX_MONTO:
        problem = f"must be at most {MAX_MONTO}; got {value!r}"
    elif amount != amount.quantize(CENTS):
        problem = f"has at most 2 decimals (centavos); got {value!r}"
    else:
        return amount.quantize(CENTS)
    errors.append(FieldError("monto_minimo", problem))
    return DEFAULT_MONTO_MINIMO


def _moment(
    field: str, value: object, timezone: tzinfo, errors: list[FieldError]
) -> datetime | None:
    if _absent(value):
        return None
    text = str(value).strip()
    try:
        if len(text) == len("2026-10-27"):
            moment = datetime.combine(date.fromisoformat(text), time(), tzinfo=timezone)
        else:
            moment = datetime.fromisoformat(_OFFSET_SENT_AS_SPACE.sub(r"\1+\2", text))
    except ValueError:
        errors.append(
            FieldError(
                field,
                "must be a date (2026-10-27, midnight at its start) or an ISO 8601 datetime "
                f"(2026-10-27T08:00:00-05:00); got {value!r}",
            )
        )
        return None
    # Checked on the date as written, before any arithmetic could overflow.
    if not EARLIEST_MOMENT <= moment.date() < LATEST_MOMENT:
        errors.append(
            FieldError(
                field,
                f"must be on or after {EARLIEST_MOMENT} and before {LATEST_MOMENT}; got {value!r}",
            )
        )
        return None
    return moment.astimezone(timezone) if moment.tzinfo else moment.replace(tzinfo=timezone)
