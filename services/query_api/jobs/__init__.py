"""Jobs over HTTP: create export and report jobs, follow them, download and delete results."""

from services.query_api.jobs.endpoints import router

__all__ = ["router"]
