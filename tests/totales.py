"""clientes_totales against the purchases themselves: the customers whose kept totals differ
from their completed purchases counted and summed now (a row of zeros reads as no row)."""

TOTALES_DIFFERING = """
SELECT coalesce(kept.cliente_id, counted.cliente_id), kept.cantidad, kept.monto,
    counted.cantidad, counted.monto
FROM (SELECT * FROM clientes_totales WHERE cantidad <> 0 OR monto <> 0) AS kept
FULL JOIN (
    SELECT cliente_id, count(*) AS cantidad, sum(monto) AS monto
    FROM compras WHERE estado = 'completada' GROUP BY cliente_id
) AS counted ON counted.cliente_id = kept.cliente_id
WHERE kept.cantidad IS DISTINCT FROM counted.cantidad
    OR kept.monto IS DISTINCT FROM counted.monto
"""
