"""Wire types of the lookups. Answers are rendered by PostgreSQL (repository.py), so the response
models here document the OpenAPI schema only; request bodies are validated with them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

MAX_LOTE = 1000

Money = Annotated[
    str,
    Field(
        pattern=r"^\d+\.\d{2}$",
        examples=["1500000.00"],
        description="COP with 2 decimals, as a decimal string (never a float).",
    ),
]


class TipoDocumentoRef(BaseModel):
    id: int
    codigo: str = Field(examples=["CC"])
    nombre: str = Field(examples=["Cédula de Ciudadanía"])


class TipoDocumento(TipoDocumentoRef):
    descripcion: str


class Compra(BaseModel):
    id: int
    numero_factura: str
    fecha_compra: datetime
    monto: Money
    descripcion: str
    estado: Literal["pendiente", "completada", "cancelada"]


class ClienteResumen(BaseModel):
    id: int
    tipo_documento: TipoDocumentoRef
    numero_documento: str
    nombre: str
    apellido: str
    nombre_completo: str = Field(description='"{nombre} {apellido}"')
    correo: str
    telefono: str
    fecha_registro: datetime
    activo: bool


class ClienteDetalle(ClienteResumen):
    total_compras: int = Field(description="Number of completed purchases.")
    monto_total_compras: Money = Field(description="Sum of the completed purchases.")
    compras: list[Compra] = Field(description="The most recent purchases, newest first.")


class ClientesPage(BaseModel):
    results: list[ClienteResumen]
    next: str | None = Field(description="URL of the next page; null on the last one.")


class ComprasPage(BaseModel):
    results: list[Compra]
    next: str | None = Field(description="URL of the next page; null on the last one.")


class Documento(BaseModel):
    tipo_documento: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ] = Field(examples=["CC"], description="The type's code, case-insensitive.")
    numero_documento: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ] = Field(examples=["1020304050"])


class LoteRequest(BaseModel):
    documentos: list[Documento] = Field(min_length=1, max_length=MAX_LOTE)


class LoteResponse(BaseModel):
    results: list[ClienteDetalle | None] = Field(
        description="One entry per requested document, in order: the active customer or null."
    )
