"""The loyalty rule (services/export_worker/queries.py LoyaltyRule): strictly more than the
minimum, within [desde, hasta), timezone-aware."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from services.export_worker import queries
from tests.factories import BUSINESS_TZ

MINIMO = Decimal("5000000.00")


def test_rule_is_pure_and_strict() -> None:
    desde = datetime(1995, 3, 4, tzinfo=BUSINESS_TZ)
    rule = queries.LoyaltyRule(desde=desde, hasta=desde + timedelta(days=1), monto_minimo=MINIMO)
    assert not rule.qualifies(Decimal("5000000.00"))
    assert rule.qualifies(Decimal("5000000.01"))
    assert rule.in_window(desde)
    assert not rule.in_window(desde - timedelta(microseconds=1))
    assert rule.in_window(desde + timedelta(hours=23, minutes=59))
    assert not rule.in_window(desde + timedelta(days=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        queries.LoyaltyRule(
            desde=datetime(1995, 3, 4), hasta=datetime(1995, 3, 5), monto_minimo=MINIMO
        )
    with pytest.raises(ValueError, match="before"):
        queries.LoyaltyRule(desde=desde, hasta=desde, monto_minimo=MINIMO)
