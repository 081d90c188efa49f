"""The SAC page in a real headless Chromium, against the real API, database and worker.

Debian's Chromium (scripts/install-browser.sh) driven by Playwright; one browser for the module,
a fresh context (so a fresh sessionStorage) per test. A screenshot of every state lands in
test-output/screenshots/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest
from playwright.sync_api import Browser, Download, Page, expect, sync_playwright
from sqlalchemy import Engine, text

from harness import servers
from harness.servers import OUTPUT
from shared import api_keys
from shared.models import Cliente, Compra
from tests.conftest import BOOTSTRAP_KEY, Api, Workers
from tests.factories import make_cliente, make_compra, unique_number
from tests.jobs import new_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = OUTPUT / "screenshots"
JOB_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh (make test does)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, api: Api) -> Iterator[Page]:
    context = browser.new_context(
        base_url=api.url,
        viewport={"width": 1280, "height": 900},
        locale="es-CO",
        timezone_id="America/Bogota",
        accept_downloads=True,
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def screenshot(page: Page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def open_with_key(page: Page, key: str = BOOTSTRAP_KEY) -> None:
    page.goto("/")
    page.get_by_role("textbox", name="API key").fill(key)
    page.get_by_role("button", name="Guardar clave").click()
    expect(page.locator("#clave-estado")).to_have_text("Clave guardada. Ya puede buscar clientes.")


def search(page: Page, cliente: Cliente) -> None:
    page.get_by_label("Tipo de documento").select_option(str(cliente.tipo_documento_id))
    page.get_by_label("Número de documento").fill(cliente.numero_documento)
    page.get_by_role("button", name="Buscar", exact=True).click()


def test_page_is_public_and_refuses_a_wrong_key(page: Page, anonymous: httpx.Client) -> None:
    response = anonymous.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for asset, media_type in (("/web/app.js", "javascript"), ("/web/app.css", "text/css")):
        served = anonymous.get(asset)
        assert served.status_code == 200 and media_type in served.headers["content-type"]

    page.goto("/")
    expect(page.get_by_role("heading", name="Consulta de clientes")).to_be_visible()
    screenshot(page, "01-sin-clave")
    page.get_by_role("textbox", name="API key").fill("clk_not_a_real_key")
    page.keyboard.press("Enter")
    expect(page.locator("#clave-estado")).to_have_text(
        "La API key no es válida o fue revocada. Ingrésela de nuevo."
    )
    assert page.evaluate("sessionStorage.getItem('clientes.apiKey')") is None
    screenshot(page, "02-clave-rechazada")


def test_search_shows_the_customer_card_with_data_as_text(page: Page, engine: Engine) -> None:
    # Customer data is rendered as text: markup in a name must show, never run.
    cliente = make_cliente(engine, nombre="Ana <script>window.pwned = 1</script>", apellido="Pérez")
    make_compra(engine, cliente, monto="1500000.00", numero_factura=f"F-{cliente.id}-1")
    make_compra(engine, cliente, monto="250000.50", numero_factura=f"F-{cliente.id}-2")
    make_compra(engine, cliente, monto="999999.00", estado="cancelada")

    open_with_key(page)
    search(page, cliente)

    card = page.locator("#cliente")
    expect(card).to_be_visible()
    expect(page.locator("#cliente-nombre")).to_have_text(f"{cliente.nombre} {cliente.apellido}")
    expect(page.locator("#cliente-documento")).to_have_text(f"CC {cliente.numero_documento}")
    expect(page.locator("#cliente-correo")).to_have_text(cliente.correo)
    expect(page.locator("#cliente-activo")).to_have_text("Activo")
    # Completed purchases only: the cancelled one is listed but not counted.
    expect(page.locator("#cliente-total-compras")).to_have_text("2")
    expect(page.locator("#cliente-monto-total")).to_have_text("$ 1.750.000,50")
    expect(page.locator("#compras-filas tr")).to_have_count(3)
    expect(page.locator("#compras-filas")).to_contain_text("$ 250.000,50")
    assert page.evaluate("window.pwned") is None
    assert card.locator("script").count() == 0
    screenshot(page, "03-cliente")

    # Usable on a phone: nothing wider than the screen but the purchases table's own scroller.
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "04-cliente-375px")


def test_missing_customer_says_not_found(page: Page) -> None:
    open_with_key(page)
    page.get_by_label("Número de documento").fill("000000000000")
    page.get_by_role("button", name="Buscar", exact=True).click()
    expect(page.locator("#buscar-estado")).to_have_text("Cliente no encontrado.")
    expect(page.locator("#cliente")).to_be_hidden()
    screenshot(page, "05-no-encontrado")


def test_a_key_without_the_export_scope_is_told_so(page: Page, engine: Engine) -> None:
    read_only = api_keys.generate_key()
    with engine.begin() as connection:
        connection.execute(api_keys.insert_key("solo lectura", ["read"], read_only))
    cliente = make_cliente(engine, nombre="Sin", apellido="Permiso")

    page.goto("/")
    page.get_by_role("textbox", name="API key").fill(read_only.key)
    page.keyboard.press("Enter")
    search(page, cliente)
    expect(page.locator("#cliente-nombre")).to_have_text("Sin Permiso")
    page.get_by_role("button", name="Exportar TXT").click()
    # The problem's own detail follows the Spanish explanation.
    expect(page.locator("#exportar-job .job-status")).to_have_text(
        re.compile(r"^Exportación TXT: Su API key no tiene permiso para esta acción\. \S.*export")
    )
    screenshot(page, "09-sin-permiso")


def focus_by_tab(page: Page, element_id: str, max_presses: int = 15) -> None:
    for _ in range(max_presses):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} is not reachable with Tab")


def test_keyboard_only_use(page: Page, engine: Engine) -> None:
    cliente = make_cliente(engine, codigo="PA", nombre="Teclado", apellido="Sin Ratón")
    page.goto("/")
    focus_by_tab(page, "api-key")
    page.keyboard.type(BOOTSTRAP_KEY)
    page.keyboard.press("Enter")
    # Once the key is accepted, focus moves on to the document type.
    expect(page.locator("#tipo-documento")).to_be_focused()
    expect(page.locator("#tipo-documento option")).not_to_have_count(1)
    page.keyboard.type("PA")  # a closed select's type-ahead picks "PA · Pasaporte"
    expect(page.locator("#tipo-documento")).to_have_value(str(cliente.tipo_documento_id))
    page.keyboard.press("Tab")
    expect(page.locator("#numero-documento")).to_be_focused()
    page.keyboard.type(cliente.numero_documento)
    page.keyboard.press("Enter")
    expect(page.locator("#cliente-nombre")).to_have_text("Teclado Sin Ratón")
    expect(page.locator("#buscar-estado")).to_have_text("Cliente encontrado: Teclado Sin Ratón.")
    for button in ("Exportar CSV", "Exportar Excel", "Exportar TXT"):
        for _ in range(15):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == button:
                break
        else:
            raise AssertionError(f"{button} is not reachable with Tab")
    screenshot(page, "06-teclado")


@pytest.mark.usefixtures("workers")
def test_export_csv_downloads_the_customers_file(
    page: Page, engine: Engine, tmp_path: Path
) -> None:
    cliente = make_cliente(engine, nombre="Exporta", apellido='Ñandú, "Comillas"')
    compras: list[Compra] = [
        make_compra(engine, cliente, monto="120000.00"),
        make_compra(engine, cliente, monto="80000.25", estado="pendiente"),
    ]
    open_with_key(page)
    search(page, cliente)
    with page.expect_download(timeout=JOB_TIMEOUT_MS) as started:
        page.get_by_role("button", name="Exportar CSV").click()
    download = started.value
    assert download.suggested_filename == f"cliente_CC_{cliente.numero_documento}.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    raw = saved.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the accents right
    cells = {cell for row in csv.reader(io.StringIO(raw.decode("utf-8-sig"))) for cell in row}
    expected = {
        cliente.numero_documento,
        cliente.nombre,
        cliente.apellido,
        cliente.correo,
        *(compra.numero_factura for compra in compras),
    }
    assert expected <= cells, expected - cells
    status = page.locator("#exportar-job .job-status")
    expect(status).to_contain_text(f"listo, {download.suggested_filename}")
    expect(
        page.get_by_role("link", name=f"Descargar de nuevo: {download.suggested_filename}")
    ).to_be_visible()
    screenshot(page, "07-exportacion-csv")


@pytest.mark.usefixtures("workers")
def test_loyalty_report_downloads_an_xlsx(page: Page, engine: Engine, tmp_path: Path) -> None:
    fiel = make_cliente(engine, nombre="Fiel", apellido="Comprador")
    make_compra(
        engine, fiel, monto="6000000.00", fecha_compra=datetime.now(UTC) - timedelta(days=2)
    )

    open_with_key(page)
    expect(page.get_by_label("Monto mínimo (COP)")).to_have_value("5.000.000")
    with page.expect_download(timeout=JOB_TIMEOUT_MS) as started:
        page.get_by_role("button", name="Generar reporte").click()
    download = started.value
    assert download.suggested_filename.startswith("reporte_fidelizacion_")
    assert download.suggested_filename.endswith(".xlsx")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    workbook = openpyxl.load_workbook(saved, read_only=True)
    first_sheet = workbook.worksheets[0]
    rows = [
        [cell for cell in row if cell is not None]
        for row in first_sheet.iter_rows(values_only=True)
    ]
    workbook.close()
    matching = [row for row in rows if fiel.numero_documento in row]
    assert len(matching) == 1, rows[:5]
    assert fiel.nombre in matching[0] and fiel.apellido in matching[0]
    expect(page.locator("#reporte-form .job-status")).to_contain_text("listo")
    screenshot(page, "08-reporte-xlsx")


# ---------------------------------------------------------------- bulk export (SPEC §10)

BOGOTA = ZoneInfo("America/Bogota")


def bulk_export(page: Page) -> Download:
    """Submit the bulk export form and wait for the file the page starts downloading."""
    with page.expect_download(timeout=JOB_TIMEOUT_MS) as started:
        page.get_by_role("button", name="Exportar", exact=True).click()
    return started.value


@pytest.mark.usefixtures("workers")
def test_bulk_export_of_pasted_documents(
    page: Page, engine: Engine, anonymous: httpx.Client, tmp_path: Path
) -> None:
    cedula = make_cliente(engine, nombre="Masiva", apellido="Cédula <b>uno</b>")
    nit = make_cliente(engine, codigo="NIT", nombre="Masiva", apellido="Empresa S.A.S.")
    nadie = unique_number("CC")  # a well-formed number no customer has
    pasted = [
        f"CC {cedula.numero_documento}",
        f"nit,{nit.numero_documento}",  # any case, a comma
        "",
        f"CC;{nadie}",
        "Ana María Pérez",  # line 5: not a document
        "XX 123",  # line 6: no such type
        f"cc  {cedula.numero_documento}",  # the same document again
    ]
    open_with_key(page)
    page.get_by_label("Documentos (uno por línea)").fill("\n".join(pasted))
    expect(page.locator("#masiva-lectura")).to_have_text(
        "3 documentos para exportar (1 repetido omitido). "
        "Estas 2 líneas no se pudieron leer y se omitirán:"
    )
    expect(page.locator("#masiva-errores li")).to_have_text(
        [
            "Línea 5: «Ana María Pérez»: no tiene la forma TIPO NÚMERO.",
            re.compile(r"^Línea 6: «XX 123»: el tipo «XX» no existe \(use .*\bCC\b.*\)\.$"),
        ]
    )
    download = bulk_export(page)
    assert download.suggested_filename.endswith(".csv")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    rows = list(csv.reader(io.StringIO(saved.read_bytes().decode("utf-8-sig"))))
    found = {cell for row in rows[1:] for cell in row}
    for cliente in (cedula, nit):
        assert {cliente.numero_documento, cliente.apellido} <= found, rows
    assert len(rows) == 3, rows  # the header and one row per customer: the repeat is left out
    status = page.locator("#masiva-form .job-status")
    expect(status).to_have_text(
        re.compile(
            rf"^Exportación masiva CSV: listo, {re.escape(download.suggested_filename)} "
            r"\(.+, 2 filas\)\.$"
        )
    )
    expect(page.locator("#masiva-no-encontrados")).to_have_text("1 de 3 documentos no encontrados.")
    # The link downloads again without the key: it is the job's signed link.
    link = page.get_by_role("link", name=f"Descargar {download.suggested_filename}", exact=False)
    href = link.get_attribute("href")
    assert href and "signature=" in href
    again = anonymous.get(href)
    assert again.status_code == 200 and again.content == saved.read_bytes()
    screenshot(page, "10-masiva-documentos")

    # A list with nothing to export is refused in the page, before any request.
    page.get_by_label("Documentos (uno por línea)").fill("no es un documento")
    page.get_by_role("button", name="Exportar", exact=True).click()
    expect(status).to_have_text("Pegue al menos un documento, por ejemplo CC 1020304050.")
    expect(page.locator("#masiva-errores li")).to_have_text(
        ["Línea 1: «no es un documento»: no tiene la forma TIPO NÚMERO."]
    )


@pytest.mark.usefixtures("workers")
def test_bulk_export_by_filters_as_jsonl_with_purchases(
    page: Page, engine: Engine, tmp_path: Path
) -> None:
    # A name of this test's own, so that the text filter leaves out every other test's customers.
    nombre = f"Filtro{uuid.uuid4().hex[:10]}"
    elegido = make_cliente(engine, nombre=nombre, apellido="Elegido")
    compra = make_compra(
        engine, elegido, monto="123456.78", fecha_compra=datetime.now(UTC) - timedelta(hours=1)
    )
    inactivo = make_cliente(engine, nombre=nombre, apellido="Inactivo", activo=False)
    make_compra(engine, inactivo, fecha_compra=datetime.now(UTC) - timedelta(hours=1))
    make_cliente(engine, nombre=nombre, apellido="Sin compras")  # outside the purchase window
    today = datetime.now(BOGOTA).date()
    since, until = str(today - timedelta(days=1)), str(today + timedelta(days=1))

    open_with_key(page)
    page.get_by_label("Los que cumplan unos filtros").check()
    expect(page.get_by_label("Documentos (uno por línea)")).to_be_hidden()
    page.get_by_label("Nombre o correo contiene").fill(nombre.lower())
    page.get_by_label("Estado").select_option(label="Solo activos")
    page.get_by_label("Tipo", exact=True).select_option("CC")
    page.get_by_label("Registrados desde (incluido)").fill(since)
    page.get_by_label("Registrados hasta (sin incluir)").fill(until)
    page.get_by_label("Con compras desde (incluido)").fill(since)
    page.get_by_label("Con compras hasta (sin incluir)").fill(until)
    page.locator("#masiva-formato").select_option("jsonl")
    page.get_by_label("Incluir las compras").check()
    download = bulk_export(page)
    assert download.suggested_filename.endswith(".jsonl")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    lines = [json.loads(line) for line in saved.read_text("utf-8").splitlines() if line]
    assert [line["numero_documento"] for line in lines] == [elegido.numero_documento], lines
    assert [(c["numero_factura"], c["monto"]) for c in lines[0]["compras"]] == [
        (compra.numero_factura, "123456.78")
    ]
    expect(page.locator("#masiva-form .job-status")).to_contain_text("listo")
    expect(page.locator("#masiva-no-encontrados")).to_be_hidden()  # no documents asked for
    screenshot(page, "11-masiva-filtros")


# Enough purchases that an excel export of them, one row each, runs for seconds.
BUSY_ROWS = 100_000


@pytest.mark.usefixtures("workers")
def rows_written_of(engine: Engine, key: str) -> int:
    """The rows written so far by the bulk export of the API key `key` (its only job)."""
    with engine.connect() as connection:
        written = connection.execute(
            text(
                "SELECT j.rows_written FROM jobs AS j JOIN api_keys AS k ON k.id = j.api_key_id"
                " WHERE k.key_hash = :hash AND j.type = 'exportacion_masiva'"
            ),
            {"hash": api_keys.hash_key(key)},
        ).scalar()
    return int(written or 0)


@contextmanager
def frozen(worker: servers.Process) -> Iterator[None]:
    """The worker's pool processes (where its job runs) stopped with SIGSTOP for the block, then
    continued: a job caught part-way however fast this machine renders it."""
    found = subprocess.run(
        ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, check=False
    )
    children = [int(pid) for pid in found.stdout.split()]
    assert children, f"no pool process under worker {worker.pid}"
    for pid in children:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in children:
            os.kill(pid, signal.SIGCONT)


def test_bulk_export_shows_progress_and_can_be_canceled(
    page: Page, engine: Engine, api: Api, workers: Workers
) -> None:
    key = new_key(engine, ["read", "export"])  # its jobs are this test's alone
    cliente = make_cliente(engine, nombre="Cancelar", apellido="Masiva")
    with engine.begin() as connection:  # pending and years back: nothing else counts them
        connection.execute(
            text(
                "INSERT INTO compras (cliente_id, numero_factura, fecha_compra, monto, estado)"
                " SELECT :id, 'W' || :id || '-' || n, '2019-01-01'::timestamptz + n * interval"
                " '1 minute', 1000, 'pendiente' FROM generate_series(1, :n) AS n"
            ),
            {"id": cliente.id, "n": BUSY_ROWS},
        )
    open_with_key(page, key)
    page.get_by_label("Documentos (uno por línea)").fill(f"CC {cliente.numero_documento}")
    page.locator("#masiva-formato").select_option("excel")
    page.get_by_label("Incluir las compras").check()
    page.get_by_role("button", name="Exportar", exact=True).click()

    status = page.locator("#masiva-form .job-status")
    servers.wait_until(lambda: rows_written_of(engine, key) > 0, 120, "rows written")
    with frozen(workers.bulk):  # held part-way: on a quiet machine it ends in a few seconds
        expect(status).to_have_text(
            re.compile(r"^Exportación masiva Excel: Generando \(\d+ %\) · [\d.]+ filas escritas…$"),
            timeout=JOB_TIMEOUT_MS,
        )
        expect(page.locator("#masiva-form progress")).to_be_visible()
        screenshot(page, "12-masiva-en-curso")
        cancel = page.get_by_role("button", name="Cancelar exportación")
        cancel.click()
        expect(status).to_have_text("Exportación masiva Excel: el trabajo fue cancelado.")
        expect(cancel).to_be_hidden()
    expect(page.locator("#masiva-form .job-download")).to_be_hidden()
    with api.client(key) as http:
        (job,) = http.get("/api/jobs/", params={"type": "exportacion_masiva"}).json()["results"]
    assert job["status"] == "canceled" and job["result"] is None, job
    assert 0 < job["rows_written"] < BUSY_ROWS, job  # canceled mid-way, not after the end
    screenshot(page, "13-masiva-cancelada")
