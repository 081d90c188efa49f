"""Dataset sizes: how many customers, the seed that makes them, the database that holds them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Size:
    name: str
    clientes: int
    compras_por_cliente: int = 10
    seed: int = 42
    soak_seconds: int = 180  # the soak's default length (--soak-seconds)
    paced_seconds: int = 300  # the paced run's, after its warm-up (--paced-seconds)

    @property
    def database(self) -> str:
        return f"clientes_bench_{self.name}"

    @property
    def marker(self) -> str:
        """What the dataset was built with: a different marker means seeding again."""
        return f"clientes={self.clientes} compras={self.compras_por_cliente} seed={self.seed}"


SIZES = {
    size.name: size
    for size in (
        Size(
            "tiny", 5_000, soak_seconds=20, paced_seconds=60
        ),  # development only: a harness check in seconds
        Size("small", 100_000),
        Size("large", 1_000_000),
    )
}
PUBLIC_SIZES = ("small", "large")
