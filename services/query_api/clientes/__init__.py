"""Customer lookups: document types, the customer list, detail, search and batch search."""

from services.query_api.clientes.endpoints import router

__all__ = ["router"]
