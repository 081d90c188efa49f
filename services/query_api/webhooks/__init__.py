"""Webhook endpoints over HTTP (SPEC §11): register, list, delete, and their deliveries."""

from services.query_api.webhooks.endpoints import router

__all__ = ["router"]
