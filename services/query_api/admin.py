"""The back office at /admin (sqladmin): customers, purchases, document types, jobs, API keys,
webhook endpoints and their deliveries.

Login with ADMIN_USERNAME / ADMIN_PASSWORD (services/query_api/admin_auth.py: throttling,
sessions, cookies, cross-site requests). API keys are handled as the `api_keys` CLI does: the
key is shown once, only its hash is stored, and every change sends NOTIFY so API processes
forget cached keys at once. Revoking is a POST, after a confirmation page.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, ClassVar

from fastapi import FastAPI
from markupsafe import Markup
from sqladmin import Admin, ModelView, action, expose
from sqladmin.secret import Secret
from sqlalchemy import Select, String, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from wtforms import Form, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, NumberRange

from services.query_api.admin_auth import AdminLogin, SameOriginChanges
from services.query_api.auth import ApiKeyCache
from shared import api_keys, db
from shared.models import (
    ESTADOS_COMPRA,
    ApiKey,
    Cliente,
    Compra,
    Job,
    TipoDocumento,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEvent,
    texto_busqueda,
)
from shared.settings import Settings

BASE_URL = "/admin"
# The admin is a handful of people: a small pool of its own keeps it off the API's pool.
ADMIN_POOL_SIZE = 2
# Our pages (the revocation's confirmation) next to sqladmin's, which they extend.
TEMPLATES_DIR = Path(__file__).parent / "admin_templates"


class _View(ModelView):
    # Files leave the system only as jobs (formula escaping, streaming, expiry), never from here.
    can_export = False
    page_size = 25

    def _stmt_by_identifier(self, identifier: str) -> Select[Any]:
        # sqladmin turns the primary key of /details/<pk>, /edit/<pk> and ?pks= into its
        # column's type: `abc` for an integer key was a ValueError, so a 500.
        try:
            return super()._stmt_by_identifier(identifier)
        except ValueError:
            raise HTTPException(400, "Identificador no válido") from None


class _ReadOnlyView(_View):
    """Records the system writes (jobs, deliveries): looked at here, never changed."""

    can_create = False
    can_edit = False
    can_delete = False


class TipoDocumentoAdmin(_View, model=TipoDocumento):
    name = "Tipo de documento"
    name_plural = "Tipos de documento"
    icon = "fa-solid fa-id-card"
    column_list: ClassVar[list[Any]] = [
        TipoDocumento.id,
        TipoDocumento.codigo,
        TipoDocumento.nombre,
        TipoDocumento.activo,
    ]
    column_searchable_list: ClassVar[list[Any]] = [TipoDocumento.codigo, TipoDocumento.nombre]


# The expression of the trigram index ix_clientes_busqueda_trgm, so name searches use it.
_NOMBRE_APELLIDO_CORREO = literal_column(texto_busqueda("clientes"), String)


class ClienteAdmin(_View, model=Cliente):
    name = "Cliente"
    name_plural = "Clientes"
    icon = "fa-solid fa-user"
    column_list: ClassVar[list[Any]] = [
        Cliente.id,
        Cliente.tipo_documento,
        Cliente.numero_documento,
        Cliente.nombre,
        Cliente.apellido,
        Cliente.correo,
        Cliente.telefono,
        Cliente.activo,
        Cliente.fecha_registro,
    ]
    column_searchable_list: ClassVar[list[Any]] = [
        Cliente.numero_documento,
        Cliente.nombre,
        Cliente.apellido,
    ]
    column_sortable_list: ClassVar[list[Any]] = [Cliente.id, Cliente.fecha_registro]
    form_excluded_columns: ClassVar[list[Any]] = [Cliente.fecha_registro]

    def search_placeholder(self) -> str:
        return "Número de documento exacto, nombre, apellido o correo"

    def search_query(self, stmt: Select[Any], term: str) -> Select[Any]:
        # sqladmin's default (ILIKE on every column) reads every row of a million-row table.
        # These two conditions are answered by indexes: the exact number by the
        # (tipo, número) unique index, a name or e-mail substring by the trigram index.
        term = term.strip()
        return stmt.where(
            or_(
                Cliente.numero_documento == term,
                _NOMBRE_APELLIDO_CORREO.contains(term.lower(), autoescape=True),
            )
        )


class CompraAdmin(_View, model=Compra):
    name = "Compra"
    name_plural = "Compras"
    icon = "fa-solid fa-receipt"
    column_list: ClassVar[list[Any]] = [
        Compra.id,
        Compra.numero_factura,
        Compra.cliente,
        Compra.fecha_compra,
        Compra.monto,
        Compra.estado,
    ]
    column_searchable_list: ClassVar[list[Any]] = [Compra.numero_factura]
    column_default_sort: ClassVar[list[tuple[Any, bool]]] = [(Compra.id, True)]
    # A select of every customer would load millions of rows: look them up as the user types.
    form_ajax_refs: ClassVar[dict[str, dict[str, Any]]] = {
        "cliente": {"fields": ("numero_documento", "nombre", "apellido"), "order_by": "id"}
    }
    form_overrides: ClassVar[dict[str, Any]] = {"estado": SelectField}
    form_args: ClassVar[dict[str, dict[str, Any]]] = {
        "estado": {"choices": [(estado, estado) for estado in ESTADOS_COMPRA]},
        "monto": {"validators": [NumberRange(min=0)]},
    }


def _download_link(job: Job, _: Any) -> Markup:
    if job.status != "succeeded" or not job.result:
        return Markup("")
    # Markup.format escapes its arguments: a stored filename can never inject HTML.
    return Markup('<a href="{}">{}</a>').format(
        f"/api/jobs/{job.id}/download", job.result.get("filename", "descargar")
    )


class JobAdmin(_ReadOnlyView, model=Job):
    name = "Job"
    name_plural = "Jobs"
    icon = "fa-solid fa-gears"
    column_list: ClassVar[list[Any]] = [
        Job.id,
        Job.type,
        Job.status,
        Job.progress,
        Job.created_at,
        Job.finished_at,
        Job.expires_at,
        Job.result,
    ]
    column_labels: ClassVar[dict[Any, str]] = {Job.result: "Descarga"}
    column_formatters: ClassVar[dict[Any, Any]] = {Job.result: _download_link}
    column_default_sort: ClassVar[list[tuple[Any, bool]]] = [(Job.created_at, True)]


class ApiKeyForm(Form):
    name = StringField("Nombre", validators=[DataRequired(), Length(max=100)])
    scopes = SelectMultipleField(
        "Permisos",
        choices=[(scope, scope) for scope in api_keys.SCOPES],
        default=["read"],
        validators=[DataRequired()],
    )


class ApiKeyAdmin(_View, model=ApiKey):
    name = "API key"
    name_plural = "API keys"
    icon = "fa-solid fa-key"
    can_edit = False
    can_delete = False  # revoked, never deleted: jobs and audits keep pointing at the key
    form = ApiKeyForm
    # Never the hash: it is all an attacker needs to check guesses offline.
    column_list: ClassVar[list[Any]] = [
        ApiKey.id,
        ApiKey.name,
        ApiKey.key_prefix,
        ApiKey.scopes,
        ApiKey.rate_limit_per_minute,
        ApiKey.created_at,
        ApiKey.revoked_at,
    ]
    column_details_exclude_list: ClassVar[list[Any]] = [ApiKey.key_hash]
    column_default_sort: ClassVar[list[tuple[Any, bool]]] = [(ApiKey.created_at, True)]
    # The API's state (set by `install`, as sqladmin sets session_maker), for this process's key
    # cache: cleared here at once; the other processes' by the NOTIFY, which reaches this one
    # too, but a moment later (a request in between still found the revoked key cached).
    api_state: ClassVar[State]

    async def insert_model(self, request: Request, data: dict[str, Any]) -> ApiKey:
        new_key = api_keys.generate_key()
        session_maker: async_sessionmaker[AsyncSession] = self.session_maker  # type: ignore[assignment]
        async with session_maker() as session, session.begin():
            created = await session.execute(
                api_keys.insert_key(data["name"], data["scopes"], new_key)
            )
            key_id = created.one().id
            await session.execute(api_keys.NOTIFY_CHANGED)
        async with session_maker() as session:
            stored = await session.get_one(ApiKey, key_id)
        Secret.reveal_once(
            request,
            new_key.key,
            title="Nueva API key",
            label="Cópiela ahora: no se volverá a mostrar.",
        )
        return stored

    # sqladmin's actions are GET links: this one only shows what would be revoked, and the
    # page's form POSTs to revoke_selected. A GET never changes anything.
    @action(name="revocar", label="Revocar")
    async def confirm_revoke(self, request: Request) -> Response:
        key_ids = _key_ids(request.query_params.get("pks", ""))
        session_maker: async_sessionmaker[AsyncSession] = self.session_maker  # type: ignore[assignment]
        async with session_maker() as session:
            keys = (await session.scalars(select(ApiKey).where(ApiKey.id.in_(key_ids)))).all()
        context = {"keys": keys, "pks": ",".join(str(key.id) for key in keys)}
        return await self.templates.TemplateResponse(request, "api_key_revoke.html", context)

    @expose("/revocar", methods=["POST"])
    async def revoke_selected(self, request: Request) -> Response:
        form = await request.form()
        key_ids = _key_ids(str(form.get("pks", "")))
        session_maker: async_sessionmaker[AsyncSession] = self.session_maker  # type: ignore[assignment]
        async with session_maker() as session, session.begin():
            for key_id in key_ids:
                await session.execute(api_keys.revoke_key(key_id))
            await session.execute(api_keys.NOTIFY_CHANGED)
        cache: ApiKeyCache = self.api_state.api_key_cache
        cache.invalidate()
        # 303: the browser follows with a GET, never POSTing the revocation again.
        return RedirectResponse(request.url_for("admin:list", identity=self.identity), 303)


def _key_ids(pks: str) -> list[uuid.UUID]:
    """The keys of `?pks=` or of the form: a comma-separated list of ids, at least one."""
    try:
        key_ids = [uuid.UUID(pk) for pk in pks.split(",") if pk.strip()]
    except ValueError:
        raise HTTPException(400, "pks: ids de API key no válidos") from None
    if not key_ids:
        raise HTTPException(400, "pks: seleccione al menos una API key")
    return key_ids


class WebhookEndpointAdmin(_View, model=WebhookEndpoint):
    """Registered by API keys over /api/webhooks; here to see, and to delete a bad one."""

    name = "Webhook endpoint"
    name_plural = "Webhook endpoints"
    icon = "fa-solid fa-satellite-dish"
    can_create = False
    can_edit = False
    # Never the secret: it signs deliveries, and its owner saw it once.
    column_list: ClassVar[list[Any]] = [
        WebhookEndpoint.id,
        WebhookEndpoint.url,
        WebhookEndpoint.events,
        WebhookEndpoint.api_key_id,
        WebhookEndpoint.created_at,
    ]
    column_details_exclude_list: ClassVar[list[Any]] = [WebhookEndpoint.secret]
    column_default_sort: ClassVar[list[tuple[Any, bool]]] = [(WebhookEndpoint.created_at, True)]


class WebhookEventAdmin(_ReadOnlyView, model=WebhookEvent):
    """Deliveries: each event for an endpoint, its status and attempts so far."""

    name = "Webhook delivery"
    name_plural = "Webhook deliveries"
    icon = "fa-solid fa-paper-plane"
    column_list: ClassVar[list[Any]] = [
        WebhookEvent.id,
        WebhookEvent.type,
        WebhookEvent.status,
        WebhookEvent.attempts,
        WebhookEvent.job_id,
        WebhookEvent.endpoint,
        WebhookEvent.created_at,
        WebhookEvent.next_attempt_at,
        WebhookEvent.delivered_at,
    ]
    column_searchable_list: ClassVar[list[Any]] = [WebhookEvent.status, WebhookEvent.type]
    column_default_sort: ClassVar[list[tuple[Any, bool]]] = [(WebhookEvent.created_at, True)]


class WebhookAttemptAdmin(_ReadOnlyView, model=WebhookAttempt):
    """Every POST of an event: the receiver's answer or the error, and when the next is due."""

    name = "Webhook attempt"
    name_plural = "Webhook attempts"
    icon = "fa-solid fa-list-check"
    column_list: ClassVar[list[Any]] = [
        WebhookAttempt.event_id,
        WebhookAttempt.attempt,
        WebhookAttempt.attempted_at,
        WebhookAttempt.status_code,
        WebhookAttempt.duration_ms,
        WebhookAttempt.error,
        WebhookAttempt.next_attempt_at,
    ]
    column_default_sort: ClassVar[list[tuple[Any, bool]]] = [(WebhookAttempt.id, True)]


VIEWS = (
    ClienteAdmin,
    CompraAdmin,
    TipoDocumentoAdmin,
    JobAdmin,
    ApiKeyAdmin,
    WebhookEndpointAdmin,
    WebhookEventAdmin,
    WebhookAttemptAdmin,
)


class _AdminRoot:
    """TrailingSlashMiddleware turns /admin/ into /admin, which the /admin mount never matches:
    this route hands that path to the admin as its own root."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root_path = scope.get("root_path", "")
        scope = {
            **scope,
            "app_root_path": scope.get("app_root_path", root_path),
            "root_path": root_path + BASE_URL,
            "path": root_path + BASE_URL + "/",
        }
        await self.admin.admin(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> Admin:
    """Mount the admin at /admin with an engine of its own (connections open on first use)."""
    engine = db.async_engine(settings.model_copy(update={"db_pool_size": ADMIN_POOL_SIZE}))
    # The API's Redis client, made by the lifespan once the app starts.
    login = AdminLogin(settings, lambda: app.state.redis, BASE_URL)
    admin = Admin(
        app,
        engine,
        base_url=BASE_URL,
        title="Clientes · administración",
        authentication_backend=login,
        middlewares=[Middleware(SameOriginChanges)],
        templates_dir=str(TEMPLATES_DIR),
    )
    login.templates = admin.templates
    ApiKeyAdmin.api_state = app.state
    for view in VIEWS:
        admin.add_view(view)
    app.router.routes.append(Route(BASE_URL, _AdminRoot(admin), include_in_schema=False))
    return admin
