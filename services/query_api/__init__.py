"""The query API: thin FastAPI service answering lookups from PostgreSQL and accepting jobs."""
