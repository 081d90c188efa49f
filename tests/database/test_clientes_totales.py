"""clientes_totales follows every change to the purchases, whatever statement makes it: each
step below is checked against the purchases counted and summed afresh."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine, text

from tests.factories import make_cliente, make_compra
from tests.totales import TOTALES_DIFFERING


def differing(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(TOTALES_DIFFERING))]


def totales(engine: Engine, cliente_id: int) -> tuple[int, Decimal] | None:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT cantidad, monto FROM clientes_totales WHERE cliente_id = :id"),
            {"id": cliente_id},
        ).first()
    return None if row is None else (row.cantidad, row.monto)


def run(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), params)


def test_every_change_to_the_purchases_is_counted(engine: Engine) -> None:
    ana, luis = make_cliente(engine), make_cliente(engine)
    make_compra(engine, ana, monto="10.50")
    make_compra(engine, ana, monto="4.50")
    pendiente = make_compra(engine, ana, monto="100.00", estado="pendiente")
    assert totales(engine, ana.id) == (2, Decimal("15.00"))
    assert differing(engine) == []

    steps = [
        # One statement, many customers, completed or not.
        "INSERT INTO compras (cliente_id, numero_factura, fecha_compra, monto, estado)"
        " SELECT c, 'T-' || c || '-' || n, now(), n, CASE WHEN n % 2 = 0 THEN 'completada'"
        " ELSE 'cancelada' END FROM unnest(ARRAY[:ana, :luis]) AS c, generate_series(1, 5) AS n",
        # A pending purchase completed; an amount changed; a purchase moved to another customer.
        "UPDATE compras SET estado = 'completada' WHERE id = :pendiente",
        "UPDATE compras SET monto = monto + 0.01 WHERE cliente_id = :ana AND monto = 10.50",
        "UPDATE compras SET cliente_id = :luis WHERE cliente_id = :ana AND monto = 4.50",
        # Nothing that counts changes: no total moves.
        "UPDATE compras SET descripcion = 'otra' WHERE cliente_id = :ana",
        "DELETE FROM compras WHERE cliente_id = :luis AND estado = 'completada' AND monto = 2",
        # A customer deleted takes its purchases along (ON DELETE CASCADE).
        "DELETE FROM clientes WHERE id = :ana",
    ]
    for step in steps:
        run(engine, step, ana=ana.id, luis=luis.id, pendiente=pendiente.id)
        assert differing(engine) == [], step
    assert totales(engine, luis.id) == (2, Decimal("8.50"))  # 4 + 4.50
    assert totales(engine, ana.id) in (None, (0, Decimal("0.00")))


def test_truncate_empties_them(engine: Engine) -> None:
    make_compra(engine, make_cliente(engine))
    run(engine, "TRUNCATE clientes, compras")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM clientes_totales")).scalar() == 0
