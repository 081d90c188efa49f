"""API keys over HTTP (scope admin): create, list, show and revoke; and the bootstrap key."""

from services.query_api.api_keys.endpoints import router
from services.query_api.api_keys.service import ensure_bootstrap_key

__all__ = ["ensure_bootstrap_key", "router"]
