"""Wire types of the API-keys endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

from shared import api_keys


class ApiKeyCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    scopes: list[str] = Field(
        examples=[["read", "export"]],
        json_schema_extra={"items": {"type": "string", "enum": list(api_keys.SCOPES)}},
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        return api_keys.validate_scopes(scopes)


class ApiKeyCreated(BaseModel):
    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    key: str = Field(description="The key itself: shown this once, only its hash is stored.")


class ApiKeyInfo(BaseModel):
    id: uuid.UUID
    name: str
    key_prefix: str = Field(description="The key's first characters, to recognise it.")
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
