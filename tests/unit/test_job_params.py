"""A loyalty report's parameters (shared/job_params.py), parsed directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared import job_params
from shared.job_params import InvalidParams

BOGOTA = ZoneInfo("America/Bogota")


def test_report_dates_mean_midnight_in_the_business_timezone() -> None:
    now = datetime(2026, 11, 26, 15, 30, 12, 123456, tzinfo=UTC)
    params = job_params.parse_report(
        desde="2026-10-27",
        hasta="2026-11-26T00:00:00 05:00",  # '+' decoded as a space from a query string
        monto_minimo="1000.5",
        formato="XLSX",
        now=now,
        timezone=BOGOTA,
    )
    assert params.as_json() == {
        "desde": "2026-10-27T00:00:00-05:00",
        "hasta": "2026-11-25T14:00:00-05:00",
        "monto_minimo": "1000.50",
        "formato": "excel",
    }
    default = job_params.parse_report(
        desde=None, hasta=None, monto_minimo=None, formato=None, now=now, timezone=BOGOTA
    )
    assert default.hasta == now.replace(microsecond=0)
    assert default.hasta - default.desde == timedelta(days=30)
    assert (default.monto_minimo, default.formato) == (Decimal("5000000.00"), "excel")


@pytest.mark.parametrize(
    ("field", "changes", "message"),
    [
        ("formato", {"formato": "pdf"}, "must be one of excel, csv, xlsx"),
        ("desde", {"desde": "27/10/2026"}, "must be a date"),
        ("desde", {"desde": "2026-11-01", "hasta": "2026-11-01"}, "must be before hasta"),
        ("monto_minimo", {"monto_minimo": "-1"}, "≥ 0"),
        ("monto_minimo", {"monto_minimo": "1.001"}, "at most 2 decimals"),
        ("monto_minimo", {"monto_minimo": "NaN"}, "decimal number"),
    ],
)
def test_report_params_refuse_what_makes_no_sense(
    field: str, changes: dict[str, str], message: str
) -> None:
    given: dict[str, Any] = {"desde": None, "hasta": None, "monto_minimo": None, "formato": None}
    with pytest.raises(InvalidParams) as refused:
        job_params.parse_report(**(given | changes), now=datetime.now(UTC), timezone=BOGOTA)
    assert [error.field for error in refused.value.errors] == [field]
    assert message in refused.value.errors[0].message
