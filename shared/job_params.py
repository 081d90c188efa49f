"""Parameters of export and report jobs, parsed and validated in one place.

The API parses what a client sent (query string or JSON body) into `ExportParams` /
`ReportParams` and stores their `as_json()` in `jobs.params`; the worker reads them back with
`from_json`, which validates again, so both services agree on what a job means.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

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


# Bulk exports (SPEC §10). The body is validated here by hand, not by pydantic models: 100,000
# documents as models take over a second to validate, this loop a few tens of milliseconds.
FORMATOS_MASIVA = ("csv", "excel", "jsonl")
DEFAULT_FORMATO_MASIVA = "csv"
MAX_LISTA = 100_000
MAX_TEXT = 20  # a document's type code and number, as in `buscar`
MAX_Q = 100  # as the list's `q`
MAX_ID = 2**63 - 1
# A list of 100,000 bad entries is named by its first few, not 100,000 errors.
MAX_ERRORS = 20
FILTRO_FIELDS = (
    "ids",
    "documentos",
    "q",
    "activo",
    "tipo_documento",
    "registrados_desde",
    "registrados_hasta",
    "compras_desde",
    "compras_hasta",
)
_WINDOWS = (("registrados_desde", "registrados_hasta"), ("compras_desde", "compras_hasta"))


@dataclass(frozen=True, slots=True)
class BulkLists:
    """The id and document lists of a bulk export: stored apart from the job's params (in
    job_inputs), which keep only their sizes and digest."""

    ids: list[int] | None
    codigos: list[str] | None  # upper case, at the same index as their number
    numeros: list[str] | None

    def sha256(self) -> str:
        return hashlib.sha256(orjson.dumps([self.ids, self.codigos, self.numeros])).hexdigest()


@dataclass(frozen=True, slots=True)
class BulkFilter:
    """Every filter but the lists themselves; all optional, combined with AND."""

    q: str | None = None
    activo: bool | None = None
    tipo_documento: str | None = None
    registrados_desde: datetime | None = None  # inclusive
    registrados_hasta: datetime | None = None  # exclusive
    compras_desde: datetime | None = None
    compras_hasta: datetime | None = None
    ids: int | None = None  # how many ids were given (the list is in job_inputs)
    documentos: int | None = None  # how many documents

    @property
    def por_compras(self) -> bool:
        return self.compras_desde is not None or self.compras_hasta is not None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in FILTRO_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if name in ("ids", "documentos"):
                data[f"{name}_count"] = value
            else:
                data[name] = value.isoformat() if isinstance(value, datetime) else value
        return data


@dataclass(frozen=True, slots=True)
class BulkExportParams:
    formato: str
    incluir_compras: bool
    filtro: BulkFilter
    listas_sha256: str | None  # ties an Idempotency-Key's replay to the same lists
    # The lists as the client sent them, normalised: the API stores them; a worker has None
    # (it joins job_inputs in SQL).
    lists: BulkLists | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "formato": self.formato,
            "incluir_compras": self.incluir_compras,
            "filtro": self.filtro.as_json(),
        }
        if self.listas_sha256 is not None:
            data["listas_sha256"] = self.listas_sha256
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], timezone: tzinfo) -> BulkExportParams:
        """A stored job's params (the lists' counts instead of the lists)."""
        stored = dict(data.get("filtro") or {})
        counts = {name: stored.pop(f"{name}_count", None) for name in ("ids", "documentos")}
        body = {name: data.get(name) for name in ("formato", "incluir_compras")}
        parsed = parse_bulk_export(
            {**body, "filtro": stored}, timezone=timezone, known_codes=None
        ).filtro
        for name, count in counts.items():
            if count is not None and (not isinstance(count, int) or count < 1):
                raise InvalidParams([FieldError(f"filtro.{name}_count", "must be ≥ 1")])
        filtro = BulkFilter(
            **{name: getattr(parsed, name) for name in FILTRO_FIELDS if name not in counts},
            ids=counts["ids"],
            documentos=counts["documentos"],
        )
        return cls(
            formato=_formato(data.get("formato"), FORMATOS_MASIVA, DEFAULT_FORMATO_MASIVA, []),
            incluir_compras=bool(data.get("incluir_compras")),
            filtro=filtro,
            listas_sha256=data.get("listas_sha256"),
        )


class _Errors(list[FieldError]):
    def add(self, field: str, message: str) -> None:
        if len(self) < MAX_ERRORS:
            self.append(FieldError(field, message))


def parse_bulk_export(
    body: object, *, timezone: tzinfo, known_codes: frozenset[str] | None
) -> BulkExportParams:
    """A bulk export's JSON body (already decoded), every field optional. `known_codes`: the
    document type codes that exist (the API's check); None skips that check (a worker reading
    a job accepted earlier)."""
    errors = _Errors()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidParams([FieldError("body", "must be a JSON object")])
    for name in body.keys() - {"formato", "incluir_compras", "filtro"}:
        errors.add(str(name), "is not a field of a bulk export")
    formato = _formato(body.get("formato"), FORMATOS_MASIVA, DEFAULT_FORMATO_MASIVA, errors)
    incluir = body.get("incluir_compras")
    if incluir is not None and not isinstance(incluir, bool):
        errors.add("incluir_compras", f"must be true or false; got {incluir!r}")
    filtro_body = body.get("filtro")
    if filtro_body is None:
        filtro_body = {}
    if not isinstance(filtro_body, dict):
        errors.add("filtro", "must be a JSON object")
        filtro_body = {}
    for name in filtro_body.keys() - set(FILTRO_FIELDS):
        errors.add(f"filtro.{name}", f"is not a filter; filters: {', '.join(FILTRO_FIELDS)}")
    ids = _ids(filtro_body.get("ids"), errors)
    documentos = _documentos(filtro_body.get("documentos"), known_codes, errors)
    q = filtro_body.get("q")
    if q is not None and (not isinstance(q, str) or not q.strip() or len(q) > MAX_Q or "\x00" in q):
        errors.add("filtro.q", f"must be text of 1 to {MAX_Q} characters")
        q = None
    activo = filtro_body.get("activo")
    if activo is not None and not isinstance(activo, bool):
        errors.add("filtro.activo", f"must be true or false; got {activo!r}")
    tipo = _codigo("filtro.tipo_documento", filtro_body.get("tipo_documento"), known_codes, errors)
    moments = {
        name: _moment(f"filtro.{name}", filtro_body.get(name), timezone, errors)
        for pair in _WINDOWS
        for name in pair
    }
    for desde, hasta in _WINDOWS:
        start, end = moments[desde], moments[hasta]
        if start is not None and end is not None and start >= end:
            errors.add(
                f"filtro.{desde}",
                f"must be before {hasta} ({start.isoformat()} ≥ {end.isoformat()}): "
                "desde is inclusive, hasta exclusive",
            )
    if errors:
        raise InvalidParams(errors)
    lists = None
    if ids is not None or documentos is not None:
        codigos, numeros = documentos if documentos is not None else (None, None)
        lists = BulkLists(ids=ids, codigos=codigos, numeros=numeros)
    filtro = BulkFilter(
        q=q.strip() if isinstance(q, str) else None,
        activo=activo,
        tipo_documento=tipo,
        ids=None if ids is None else len(ids),
        documentos=None if documentos is None else len(documentos[0]),
        **moments,
    )
    return BulkExportParams(
        formato=formato,
        incluir_compras=bool(incluir),
        filtro=filtro,
        listas_sha256=lists.sha256() if lists else None,
        lists=lists,
    )


def _list(field: str, value: object, errors: _Errors) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        errors.add(field, "must be a list")
        return None
    if not 1 <= len(value) <= MAX_LISTA:
        errors.add(
            field,
            f"must have 1 to {MAX_LISTA:,} entries (leave it out for no such filter); "
            f"got {len(value):,}",
        )
        return None
    return value


def _ids(value: object, errors: _Errors) -> list[int] | None:
    ids = _list("filtro.ids", value, errors)
    if ids is None:
        return None
    # The common case checked at C speed; the slow loop only names the bad entries.
    if set(map(type, ids)) == {int} and min(ids) >= 1 and max(ids) <= MAX_ID:
        return ids
    for index, entry in enumerate(ids):
        if type(entry) is not int or not 1 <= entry <= MAX_ID:
            errors.add(
                f"filtro.ids[{index}]", f"must be a customer id (an integer ≥ 1); got {entry!r}"
            )
    return None


def _documentos(
    value: object, known_codes: frozenset[str] | None, errors: _Errors
) -> tuple[list[str], list[str]] | None:
    documentos = _list("filtro.documentos", value, errors)
    if documentos is None:
        return None
    fast = _documentos_fast(documentos, known_codes)
    if fast is not None:
        return fast
    # Something is wrong: the slow loop names each bad entry.
    for index, entry in enumerate(documentos):
        field = f"filtro.documentos[{index}]"
        if not isinstance(entry, dict):
            errors.add(field, "must be an object {tipo_documento, numero_documento}")
            continue
        for name in entry.keys() - _DOCUMENTO_FIELDS:
            errors.add(f"{field}.{name}", "is not a field of a document")
        _codigo(f"{field}.tipo_documento", entry.get("tipo_documento"), known_codes, errors)
        _text(f"{field}.numero_documento", entry.get("numero_documento"), errors)
    return None


_DOCUMENTO_FIELDS = frozenset({"tipo_documento", "numero_documento"})


def _documentos_fast(
    documentos: list[Any], known_codes: frozenset[str] | None
) -> tuple[list[str], list[str]] | None:
    """The documents' codes and numbers when every entry is valid, checked at C speed (100,000
    in a few milliseconds); None when any is not."""
    try:
        codigos = [entry["tipo_documento"].strip().upper() for entry in documentos]
        numeros = [entry["numero_documento"].strip() for entry in documentos]
    except (TypeError, KeyError, AttributeError):
        return None
    if max(map(len, documentos)) != len(_DOCUMENTO_FIELDS):
        return None  # a field of its own beside the two
    lengths = [*map(len, codigos), *map(len, numeros)]
    if min(lengths) < 1 or max(lengths) > MAX_TEXT:
        return None
    if known_codes is not None and not set(codigos) <= known_codes:
        return None
    if "\x00" in "".join(numeros):
        return None
    return codigos, numeros


def _text(field: str, value: object, errors: _Errors) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= MAX_TEXT or "\x00" in text:
        errors.add(field, f"must be text of 1 to {MAX_TEXT} characters; got {value!r}")
        return None
    return text


def _codigo(
    field: str, value: object, known_codes: frozenset[str] | None, errors: _Errors
) -> str | None:
    if value is None and not field.endswith("].tipo_documento"):
        return None  # the filter left out; a document's type is required
    codigo = _text(field, value, errors)
    if codigo is None:
        return None
    codigo = codigo.upper()
    if known_codes is not None and codigo not in known_codes:
        errors.add(
            field, f"must be a document type code ({', '.join(sorted(known_codes))}); got {value!r}"
        )
        return None
    return codigo
