// The SAC page: look up a customer, export their data, request the loyalty report, export
// many customers at once. Everything comes from the public API (SPEC §3–§4, §10) with the key
// the user typed.
// Data is only ever rendered with textContent: customer fields may contain markup.

const KEY_STORAGE = "clientes.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "canceled", "expired"]);
const WAIT_SECONDS = 10;
// A bulk export reports progress while it runs, and `?wait` answers only at the end: look often.
const BULK_WAIT_SECONDS = 2;
const BULK_MAX_DOCUMENTOS = 100000;
const BULK_ERRORS_SHOWN = 50;
const TIMEZONE = "America/Bogota";
const MAX_POLL_RETRIES = 5;

const JOB_STATUS = {
  queued: "En cola",
  running: "Generando",
  succeeded: "Terminado",
  failed: "Falló",
  canceled: "Cancelado",
  expired: "Expirado",
};
const FORMATOS = { csv: "CSV", excel: "Excel", txt: "TXT", jsonl: "JSON Lines" };
const COMPRAS_COLUMNS = ["Factura", "Fecha", "Monto", "Estado", "Descripción"];

const $ = (selector, root = document) => root.querySelector(selector);

// ---------------------------------------------------------------- API key

const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE),
  set: (key) => sessionStorage.setItem(KEY_STORAGE, key),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

// ---------------------------------------------------------------- HTTP

class ApiError extends Error {
  constructor(status, problem = {}, headers = new Headers()) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.detail = typeof problem.detail === "string" ? problem.detail : "";
    this.retryAfter = headers.get("Retry-After");
    this.requestId = headers.get("X-Request-ID");
  }

  static async from(response) {
    let problem = {};
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      try {
        problem = (await response.json()) || {};
      } catch {
        problem = {};
      }
    }
    return new ApiError(response.status, problem, response.headers);
  }

  get transient() {
    return this.status === 0 || this.status === 429 || this.status >= 502;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const key = apiKey.get();
  if (!key) {
    throw new ApiError(401, { detail: "" });
  }
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0);
  }
  if (!response.ok) {
    throw await ApiError.from(response);
  }
  return response;
}

// A message a person can act on, in Spanish, with the problem's own detail when it has one.
function describe(error, notFound = "No encontrado.") {
  if (!(error instanceof ApiError)) {
    return `Error inesperado en la página: ${error.message}`;
  }
  const detail = error.detail ? ` ${error.detail}` : "";
  if (error.status === 0) {
    return "No se pudo conectar con el servidor. Revise la conexión e intente de nuevo.";
  }
  if (error.status === 400 || error.status === 422) {
    return `Datos no válidos.${detail}`;
  }
  if (error.status === 401) {
    return "La API key no es válida o fue revocada. Ingrésela de nuevo.";
  }
  if (error.status === 403) {
    return `Su API key no tiene permiso para esta acción.${detail}`;
  }
  if (error.status === 404) {
    return notFound;
  }
  if (error.status === 409) {
    return `El archivo aún no está listo.${detail}`;
  }
  if (error.status === 410) {
    return "El archivo expiró: genere uno nuevo.";
  }
  if (error.status === 429) {
    const wait = error.retryAfter ? ` en ${error.retryAfter} s` : " en un momento";
    return `Demasiadas solicitudes: intente de nuevo${wait}.`;
  }
  const reference = error.requestId ? ` (referencia ${error.requestId})` : "";
  if (error.status === 503) {
    return `Servicio no disponible por ahora.${detail} Intente de nuevo en unos segundos${reference}.`;
  }
  return `Error del servidor (${error.status}).${detail}${reference}`;
}

function setMessage(element, text, kind = "info") {
  element.dataset.kind = kind;
  element.textContent = text;
}

// ---------------------------------------------------------------- formatting

// Exact, from the decimal string the API sends: never through a float.
function formatCOP(amount) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(amount));
  if (!match) {
    return String(amount);
  }
  const [, sign, whole, fraction = ""] = match;
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  return `${sign}$ ${grouped},${fraction.padEnd(2, "0").slice(0, 2)}`;
}

function formatDate(iso, options) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return String(iso ?? "");
  }
  return new Intl.DateTimeFormat("es-CO", { ...options, timeZone: TIMEZONE }).format(date);
}

const formatDateTime = (iso) => formatDate(iso, { dateStyle: "long", timeStyle: "short" });
const formatDay = (iso) => formatDate(iso, { dateStyle: "medium" });

const formatInteger = (n) => new Intl.NumberFormat("es-CO").format(n);
const plural = (n, one, many) => `${formatInteger(n)} ${n === 1 ? one : many}`;

function formatBytes(size) {
  if (size < 1024) {
    return `${size} B`;
  }
  const kib = size / 1024;
  return kib < 1024 ? `${kib.toFixed(1)} KB` : `${(kib / 1024).toFixed(1)} MB`;
}

// "5.000.000", "2.500.000,50", "5000000" or "5000000.50" -> "5000000", "2500000.50", ...
function parseAmount(text) {
  let value = text.replace(/[\s$]|COP/gi, "");
  if (value.includes(",")) {
    value = value.replace(/\./g, "").replace(",", ".");
  } else if (/^\d{1,3}(\.\d{3})+$/.test(value)) {
    value = value.replace(/\./g, "");
  }
  return /^\d+(\.\d{1,2})?$/.test(value) ? value : null;
}

function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function daysFromToday(days) {
  const date = new Date();
  date.setDate(date.getDate() + days);
  return isoDay(date);
}

const capitalize = (text) => (text ? text[0].toUpperCase() + text.slice(1) : "");

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) {
    node.textContent = text;
  }
  if (className) {
    node.className = className;
  }
  return node;
}

// "attachment; filename*=UTF-8''cliente_CC_1.csv" or 'attachment; filename="x.csv"'
function filenameFrom(disposition) {
  if (!disposition) {
    return null;
  }
  const encoded = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition);
  if (encoded) {
    try {
      return decodeURIComponent(encoded[1].trim());
    } catch {
      // fall through to the plain form
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(disposition);
  return plain ? plain[1].trim() : null;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- jobs

// One export or report at a time per panel: create it, follow it, download its file.
class JobPanel {
  constructor(root, waitSeconds = WAIT_SECONDS) {
    this.root = root;
    this.waitSeconds = waitSeconds;
    this.status = $(".job-status", root);
    this.progress = $(".job-progress", root);
    this.link = $(".job-download", root);
    this.objectUrl = null;
  }

  get busy() {
    return this.root.getAttribute("aria-busy") === "true";
  }

  set busy(value) {
    this.root.setAttribute("aria-busy", String(value));
    // A cancel button stays usable: it is for the job under way.
    for (const button of this.root.querySelectorAll("button:not(.job-cancel)")) {
      button.setAttribute("aria-disabled", String(value));
    }
  }

  reset() {
    setMessage(this.status, "");
    this.progress.hidden = true;
    this.link.hidden = true;
    if (this.objectUrl) {
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
    }
  }

  // `notFound`: what a 404 on creation means (e.g. the customer is gone); later, the job is.
  async run(create, label, notFound) {
    if (this.busy) {
      return;
    }
    this.busy = true;
    this.reset();
    let missing = notFound;
    try {
      setMessage(this.status, `${label}: enviando la solicitud…`);
      let job = await (await create()).json();
      missing = "El trabajo ya no existe.";
      this.started(job);
      job = await this.follow(job, label);
      this.stopped();
      if (job.status === "succeeded") {
        await this.download(job, label);
      } else {
        this.fail(job, label);
      }
    } catch (error) {
      this.stopped();
      this.progress.hidden = true;
      setMessage(this.status, `${label}: ${describe(error, missing)}`, "error");
      handleUnauthorized(error);
    } finally {
      this.busy = false;
    }
  }

  // Hooks: the job was accepted / is over (or could not be followed).
  started() {}

  stopped() {}

  // More to say about a job under way than its status and percentage.
  detail() {
    return "";
  }

  async follow(job, label) {
    let retries = 0;
    while (!TERMINAL.has(job.status)) {
      this.show(job, label);
      try {
        const url = `/api/jobs/${encodeURIComponent(job.id)}?wait=${this.waitSeconds}`;
        job = await (await api(url)).json();
        retries = 0;
      } catch (error) {
        // A restarting API or a busy moment should not lose the user's job: retry with backoff.
        if (!(error instanceof ApiError) || !error.transient || retries >= MAX_POLL_RETRIES) {
          throw error;
        }
        retries += 1;
        setMessage(this.status, `${label}: reintentando la consulta del estado…`);
        await sleep(Math.min(1000 * 2 ** retries, 10000));
      }
    }
    return job;
  }

  show(job, label) {
    const hasProgress = typeof job.progress === "number";
    this.progress.hidden = false;
    if (hasProgress) {
      this.progress.value = job.progress;
    } else {
      this.progress.removeAttribute("value"); // indeterminate
    }
    const percent = hasProgress ? ` (${job.progress} %)` : "";
    const status = JOB_STATUS[job.status] || job.status;
    setMessage(this.status, `${label}: ${status}${percent}${this.detail(job)}…`);
  }

  fail(job, label) {
    this.progress.hidden = true;
    const reasons = {
      failed: `falló. ${job.error?.message || ""}`.trim(),
      canceled: "el trabajo fue cancelado.",
      expired: "el archivo expiró; genere uno nuevo.",
    };
    setMessage(this.status, `${label}: ${reasons[job.status] || job.status}`, "error");
  }

  // A plain link cannot send the Authorization header: fetch the file, then save the Blob.
  async download(job, label) {
    this.progress.value = 100;
    setMessage(this.status, `${label}: descargando el archivo…`);
    const url = job.result?.download_url || `/api/jobs/${encodeURIComponent(job.id)}/download`;
    const response = await api(url);
    const blob = await response.blob();
    const filename =
      filenameFrom(response.headers.get("Content-Disposition")) || job.result?.filename || "archivo";
    this.objectUrl = URL.createObjectURL(blob);
    const save = document.createElement("a");
    save.href = this.objectUrl;
    save.download = filename;
    document.body.append(save);
    save.click();
    save.remove();

    this.link.href = this.objectUrl;
    this.link.download = filename;
    this.link.textContent = `Descargar de nuevo: ${filename}`;
    this.link.hidden = false;
    this.progress.hidden = true;
    const rows = typeof job.result?.row_count === "number" ? `, ${job.result.row_count} filas` : "";
    setMessage(this.status, `${label}: listo, ${filename} (${formatBytes(blob.size)}${rows}).`, "ok");
  }
}

// ---------------------------------------------------------------- bulk export

// "CC 1020304050", "CC,1020304050", "cc;1.020.304.050", "NIT\t900123456-7" (a spreadsheet's
// two columns), optionally quoted as a CSV writes them.
const DOCUMENT_LINE = /^"?([A-Za-z]{1,5})"?\s*(?:[,;\t]|\s)\s*"?([^\s",;]+)"?$/;
const DOCUMENT_NUMBER = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,18}[A-Za-z0-9])?$/;

// The pasted list, line by line: the documents to export, and each line that is not one.
function parseDocumentos(text, codes) {
  const documentos = [];
  const errors = [];
  const seen = new Set();
  let repeated = 0;
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (!line) {
      return;
    }
    const problem = (reason) => errors.push({ line: index + 1, text: line, reason });
    const match = DOCUMENT_LINE.exec(line);
    if (!match) {
      problem("no tiene la forma TIPO NÚMERO");
      return;
    }
    const tipo = match[1].toUpperCase();
    const numero = match[2].replace(/\./g, ""); // 1.020.304.050 as people write it
    if (codes.size > 0 && !codes.has(tipo)) {
      problem(`el tipo «${tipo}» no existe (use ${[...codes].sort().join(", ")})`);
      return;
    }
    if (!DOCUMENT_NUMBER.test(numero)) {
      problem(`el número «${match[2]}» no es válido`);
      return;
    }
    const id = `${tipo} ${numero}`;
    if (seen.has(id)) {
      repeated += 1;
      return;
    }
    seen.add(id);
    documentos.push({ tipo_documento: tipo, numero_documento: numero });
  });
  return { documentos, errors, repeated };
}

const shorten = (text, length = 60) => (text.length > length ? `${text.slice(0, length - 1)}…` : text);

// Rows written so far (while running) or in all (once done), if the job says.
function rowsWritten(job) {
  const rows = job.result?.rows_written ?? job.rows_written ?? job.result?.row_count;
  return typeof rows === "number" ? rows : null;
}

// A bulk export: follows its job often (progress and rows written), can cancel it, downloads
// through the job's signed link (the browser streams it to disk, however large).
class BulkPanel extends JobPanel {
  constructor(root) {
    super(root, BULK_WAIT_SECONDS);
    this.cancelButton = $(".job-cancel", root);
    this.notFound = $("#masiva-no-encontrados", root);
    this.jobId = null;
    this.label = "";
    this.requested = null;
    this.cancelButton.addEventListener("click", () => this.cancel());
  }

  reset() {
    super.reset();
    this.notFound.hidden = true;
    this.link.removeAttribute("href");
  }

  started(job) {
    this.jobId = job.id;
    this.cancelButton.hidden = false;
    this.cancelButton.removeAttribute("aria-disabled");
  }

  stopped() {
    this.jobId = null;
    this.cancelButton.hidden = true;
  }

  detail(job) {
    const rows = rowsWritten(job);
    return rows === null ? "" : ` · ${plural(rows, "fila escrita", "filas escritas")}`;
  }

  async cancel() {
    const id = this.jobId;
    if (!id || this.cancelButton.getAttribute("aria-disabled") === "true") {
      return;
    }
    this.cancelButton.setAttribute("aria-disabled", "true");
    setMessage(this.status, `${this.label}: cancelando…`);
    try {
      // The job's own poll then sees it `canceled` and says so.
      await api(`/api/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (error) {
      this.cancelButton.removeAttribute("aria-disabled");
      const reason = describe(error, "El trabajo ya no existe.");
      setMessage(this.status, `${this.label}: no se pudo cancelar. ${reason}`, "error");
      handleUnauthorized(error);
    }
  }

  // `requested`: how many documents the export asked for (null for one by filters).
  run(create, label, notFound, requested = null) {
    this.label = label;
    this.requested = requested;
    return super.run(create, label, notFound);
  }

  async download(job, label) {
    const result = job.result || {};
    if (!result.signed_url) {
      await super.download(job, label); // through the key, as the other panels
    } else {
      const filename = result.filename || "exportacion";
      this.link.href = result.signed_url;
      this.link.download = filename;
      // The link works without the key until `expires` (unix seconds): say until when.
      const expires = Number(new URL(result.signed_url, document.baseURI).searchParams.get("expires"));
      const time = expires ? formatDate(expires * 1000, { timeStyle: "short" }) : "";
      const until = time ? ` (enlace válido hasta las ${time})` : "";
      this.link.textContent = `Descargar ${filename}${until}`;
      this.link.hidden = false;
      this.progress.hidden = true;
      this.link.click();
      const size = typeof result.size_bytes === "number" ? `${formatBytes(result.size_bytes)}, ` : "";
      const rows = rowsWritten(job) ?? 0;
      const summary = `${size}${plural(rows, "fila", "filas")}`;
      setMessage(this.status, `${label}: listo, ${filename} (${summary}).`, "ok");
    }
    const missing = result.not_found;
    const count = Array.isArray(missing) ? missing.length : missing;
    if (typeof count === "number" && (count > 0 || this.requested !== null)) {
      const requested = this.requested === null ? "" : formatInteger(this.requested);
      let text = `${formatInteger(count)} de ${requested} documentos no encontrados.`;
      if (count === 0) {
        text = `Se encontraron todos los documentos (${requested}).`;
      } else if (!requested) {
        text = `${plural(count, "documento no encontrado", "documentos no encontrados")}.`;
      }
      this.notFound.textContent = text;
      this.notFound.dataset.kind = count === 0 ? "ok" : "error";
      this.notFound.hidden = false;
    }
  }
}

// ---------------------------------------------------------------- page

const ui = {
  keyForm: $("#clave-form"),
  keyInput: $("#api-key"),
  keySaved: $("#clave-guardada"),
  keyPrefix: $("#clave-prefijo"),
  keyChange: $("#clave-cambiar"),
  keyStatus: $("#clave-estado"),
  searchForm: $("#buscar-form"),
  tipo: $("#tipo-documento"),
  numero: $("#numero-documento"),
  searchStatus: $("#buscar-estado"),
  card: $("#cliente"),
  reportForm: $("#reporte-form"),
  desde: $("#reporte-desde"),
  hasta: $("#reporte-hasta"),
  monto: $("#reporte-monto"),
  formato: $("#reporte-formato"),
  bulkForm: $("#masiva-form"),
  bulkDocumentos: $("#masiva-documentos"),
  bulkLectura: $("#masiva-lectura"),
  bulkErrores: $("#masiva-errores"),
  bulkTipo: $("#masiva-tipo"),
  bulkFormato: $("#masiva-formato"),
  bulkCompras: $("#masiva-compras"),
};
const exportPanel = new JobPanel($("#exportar-job"));
const reportPanel = new JobPanel(ui.reportForm);
const bulkPanel = new BulkPanel(ui.bulkForm);
let cliente = null;

function showKeyState() {
  const key = apiKey.get();
  ui.keyForm.hidden = Boolean(key);
  ui.keySaved.hidden = !key;
  ui.keyPrefix.textContent = key ? key.slice(0, 8) : "";
}

function askForKey(message, kind = "error") {
  apiKey.clear();
  showKeyState();
  setMessage(ui.keyStatus, message, kind);
  ui.keyInput.focus();
}

function handleUnauthorized(error) {
  if (error instanceof ApiError && error.status === 401) {
    askForKey(describe(error));
  }
}

async function loadTipos() {
  const previous = ui.tipo.value;
  ui.tipo.replaceChildren(element("option", "Cargando…"));
  try {
    const tipos = await (await api("/api/tipos-documento/")).json();
    const options = tipos.map((tipo) => {
      const option = element("option", `${tipo.codigo} · ${tipo.nombre}`);
      option.value = String(tipo.id);
      option.dataset.codigo = tipo.codigo;
      return option;
    });
    ui.tipo.replaceChildren(...options);
    fillBulkTipos(tipos);
    const preferred = options.find((o) => o.value === previous) || options.find((o) => o.dataset.codigo === "CC");
    if (preferred) {
      preferred.selected = true;
    }
    return true;
  } catch (error) {
    ui.tipo.replaceChildren(element("option", "No se pudieron cargar los tipos"));
    ui.tipo.firstChild.value = "";
    if (error instanceof ApiError && error.status === 401) {
      askForKey(describe(error));
    } else {
      setMessage(ui.keyStatus, `No se pudieron cargar los tipos de documento. ${describe(error)}`, "error");
    }
    return false;
  }
}

function renderCliente(data) {
  cliente = data;
  $("#cliente-nombre").textContent = data.nombre_completo || `${data.nombre} ${data.apellido}`;
  const tipo = data.tipo_documento || {};
  $("#cliente-documento").textContent = `${tipo.codigo || ""} ${data.numero_documento}`.trim();
  $("#cliente-correo").textContent = data.correo || "—";
  $("#cliente-telefono").textContent = data.telefono || "—";
  $("#cliente-registro").textContent = formatDateTime(data.fecha_registro);
  $("#cliente-activo").textContent = data.activo ? "Activo" : "Inactivo";
  $("#cliente-total-compras").textContent = String(data.total_compras);
  $("#cliente-monto-total").textContent = formatCOP(data.monto_total_compras);

  const compras = Array.isArray(data.compras) ? data.compras : [];
  const rows = compras.map((compra) => {
    const row = document.createElement("tr");
    const cells = [
      element("td", compra.numero_factura),
      element("td", formatDay(compra.fecha_compra)),
      element("td", formatCOP(compra.monto), "number"),
      element("td", capitalize(compra.estado)),
      element("td", compra.descripcion || ""),
    ];
    // Column names for the narrow layout, where each row becomes a small card.
    cells.forEach((cell, index) => {
      cell.dataset.label = COMPRAS_COLUMNS[index];
    });
    row.append(...cells);
    return row;
  });
  $("#compras-filas").replaceChildren(...rows);
  $("#compras-titulo").textContent =
    compras.length > 0 ? `Compras recientes (últimas ${compras.length})` : "Compras recientes";
  $("#compras-vacio").hidden = compras.length > 0;
  $("#compras-tabla").hidden = compras.length === 0;
  if (!exportPanel.busy) {
    exportPanel.reset(); // a running export finishes and names its own file
  }
  ui.card.hidden = false;
}

async function buscar(event) {
  event.preventDefault();
  const numero = ui.numero.value.trim();
  if (!apiKey.get()) {
    askForKey("Ingrese primero su API key.");
    return;
  }
  if (!ui.tipo.value || !numero) {
    ui.numero.setAttribute("aria-invalid", String(!numero));
    setMessage(ui.searchStatus, "Elija el tipo de documento y escriba el número.", "error");
    (ui.tipo.value ? ui.numero : ui.tipo).focus();
    return;
  }
  ui.numero.removeAttribute("aria-invalid");
  setMessage(ui.searchStatus, "Buscando…");
  const query = new URLSearchParams({ tipo_documento_id: ui.tipo.value, numero_documento: numero });
  try {
    const data = await (await api(`/api/clientes/buscar/?${query}`)).json();
    renderCliente(data);
    setMessage(ui.searchStatus, `Cliente encontrado: ${$("#cliente-nombre").textContent}.`, "ok");
  } catch (error) {
    ui.card.hidden = true;
    cliente = null;
    setMessage(ui.searchStatus, describe(error, "Cliente no encontrado."), "error");
    handleUnauthorized(error);
  }
}

function exportar(event) {
  const button = event.target.closest("button[data-formato]");
  if (!button || !cliente) {
    return;
  }
  const formato = button.dataset.formato;
  const id = encodeURIComponent(cliente.id);
  exportPanel.run(
    () => api(`/api/clientes/${id}/exportar/?formato=${encodeURIComponent(formato)}`, { method: "POST" }),
    `Exportación ${FORMATOS[formato] || formato}`,
    "El cliente ya no existe.",
  );
}

function generarReporte(event) {
  event.preventDefault();
  if (!apiKey.get()) {
    askForKey("Ingrese primero su API key.");
    return;
  }
  const monto = parseAmount(ui.monto.value);
  ui.monto.setAttribute("aria-invalid", String(monto === null));
  const status = $(".job-status", ui.reportForm);
  if (monto === null) {
    setMessage(status, "El monto mínimo debe ser un número, por ejemplo 5.000.000.", "error");
    ui.monto.focus();
    return;
  }
  if (!ui.desde.value || !ui.hasta.value || ui.desde.value >= ui.hasta.value) {
    setMessage(status, "Elija un periodo válido: «Desde» debe ser anterior a «Hasta».", "error");
    ui.desde.focus();
    return;
  }
  const body = {
    desde: ui.desde.value,
    hasta: ui.hasta.value,
    monto_minimo: monto,
    formato: ui.formato.value,
  };
  reportPanel.run(
    () => api("/api/reporte-fidelizacion/generar/", { method: "POST", body }),
    "Reporte de fidelización",
    "El servicio de reportes no está disponible.",
  );
}

// ---------------------------------------------------------------- bulk export form

function fillBulkTipos(tipos) {
  const previous = ui.bulkTipo.value;
  const any = element("option", "Todos");
  any.value = "";
  const options = tipos.map((tipo) => {
    const option = element("option", `${tipo.codigo} · ${tipo.nombre}`);
    option.value = tipo.codigo;
    return option;
  });
  ui.bulkTipo.replaceChildren(any, ...options);
  ui.bulkTipo.value = options.some((o) => o.value === previous) ? previous : "";
  leerDocumentos(); // the known codes changed
}

// The document codes the API knows, once loaded (until then any code is let through).
function knownCodes() {
  return new Set([...ui.tipo.options].map((o) => o.dataset.codigo).filter(Boolean));
}

const bulkOrigen = () => ui.bulkForm.elements.origen.value;

// Parse the pasted list and say, under it, what will be exported and which lines cannot be.
function leerDocumentos() {
  const parsed = parseDocumentos(ui.bulkDocumentos.value, knownCodes());
  const { documentos, errors, repeated } = parsed;
  ui.bulkDocumentos.setAttribute("aria-invalid", String(errors.length > 0));
  if (documentos.length === 0 && errors.length === 0) {
    setMessage(ui.bulkLectura, "");
    ui.bulkErrores.replaceChildren();
    ui.bulkErrores.hidden = true;
    return parsed;
  }
  let text = `${plural(documentos.length, "documento", "documentos")} para exportar`;
  if (repeated > 0) {
    text += ` (${plural(repeated, "repetido omitido", "repetidos omitidos")})`;
  }
  if (errors.length > 0) {
    text +=
      errors.length === 1
        ? ". Esta línea no se pudo leer y se omitirá:"
        : `. Estas ${formatInteger(errors.length)} líneas no se pudieron leer y se omitirán:`;
  } else {
    text += ".";
  }
  setMessage(ui.bulkLectura, text, errors.length > 0 ? "error" : "info");
  const items = errors.slice(0, BULK_ERRORS_SHOWN).map((error) =>
    element("li", `Línea ${formatInteger(error.line)}: «${shorten(error.text)}»: ${error.reason}.`),
  );
  if (errors.length > BULK_ERRORS_SHOWN) {
    items.push(element("li", `… y ${plural(errors.length - BULK_ERRORS_SHOWN, "línea más", "líneas más")}.`));
  }
  ui.bulkErrores.replaceChildren(...items);
  ui.bulkErrores.hidden = items.length === 0;
  return parsed;
}

let lecturaTimer = null;
function leerDocumentosPronto() {
  // A pasted list of 100,000 lines is parsed once typing pauses, not on every key.
  clearTimeout(lecturaTimer);
  lecturaTimer = setTimeout(leerDocumentos, 250);
}

function mostrarOrigen() {
  const porDocumentos = bulkOrigen() === "documentos";
  $("#masiva-documentos-grupo").hidden = !porDocumentos;
  $("#masiva-filtros-grupo").hidden = porDocumentos;
}

// The filters the user picked, as SPEC §10 names them; an empty one is left out.
function bulkFiltros(status) {
  const field = (id) => $(`#masiva-${id}`);
  const filtro = {};
  const q = field("q").value.trim();
  if (q) {
    filtro.q = q;
  }
  if (field("activo").value) {
    filtro.activo = field("activo").value === "true";
  }
  if (ui.bulkTipo.value) {
    filtro.tipo_documento = ui.bulkTipo.value;
  }
  const windows = [
    ["registrados", "el periodo de registro"],
    ["compras", "el periodo de compras"],
  ];
  for (const [name, what] of windows) {
    const desde = field(`${name}-desde`);
    const hasta = field(`${name}-hasta`);
    const wrong = desde.value && hasta.value && desde.value >= hasta.value;
    desde.setAttribute("aria-invalid", String(Boolean(wrong)));
    if (wrong) {
      setMessage(status, `Elija bien ${what}: «desde» debe ser anterior a «hasta».`, "error");
      desde.focus();
      return null;
    }
    if (desde.value) {
      filtro[`${name}_desde`] = desde.value;
    }
    if (hasta.value) {
      filtro[`${name}_hasta`] = hasta.value;
    }
  }
  return filtro;
}

function exportarMasivo(event) {
  event.preventDefault();
  if (!apiKey.get()) {
    askForKey("Ingrese primero su API key.");
    return;
  }
  if (bulkPanel.busy) {
    return;
  }
  const status = $(".job-status", ui.bulkForm);
  let filtro;
  let requested = null;
  if (bulkOrigen() === "documentos") {
    clearTimeout(lecturaTimer);
    const { documentos } = leerDocumentos();
    if (documentos.length === 0) {
      setMessage(status, "Pegue al menos un documento, por ejemplo CC 1020304050.", "error");
      ui.bulkDocumentos.focus();
      return;
    }
    if (documentos.length > BULK_MAX_DOCUMENTOS) {
      const limit = formatInteger(BULK_MAX_DOCUMENTOS);
      const text = `Son ${formatInteger(documentos.length)}: el máximo es ${limit}. Divida la lista.`;
      setMessage(status, text, "error");
      ui.bulkDocumentos.focus();
      return;
    }
    filtro = { documentos };
    requested = documentos.length;
  } else {
    filtro = bulkFiltros(status);
    if (filtro === null) {
      return;
    }
  }
  const body = { formato: ui.bulkFormato.value, incluir_compras: ui.bulkCompras.checked, filtro };
  bulkPanel.run(
    () => api("/api/exportaciones/", { method: "POST", body }),
    `Exportación masiva ${FORMATOS[body.formato] || body.formato}`,
    "El servicio de exportaciones no está disponible.",
    requested,
  );
}

// ---------------------------------------------------------------- key

async function guardarClave(event) {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) {
    ui.keyInput.setAttribute("aria-invalid", "true");
    setMessage(ui.keyStatus, "Escriba la API key.", "error");
    ui.keyInput.focus();
    return;
  }
  ui.keyInput.removeAttribute("aria-invalid");
  apiKey.set(key);
  ui.keyInput.value = "";
  showKeyState();
  setMessage(ui.keyStatus, "Verificando la clave…");
  if (await loadTipos()) {
    setMessage(ui.keyStatus, "Clave guardada. Ya puede buscar clientes.", "ok");
    ui.tipo.focus();
  }
}

function cambiarClave() {
  askForKey("Escriba la nueva API key.", "info");
}

function init() {
  ui.desde.value = daysFromToday(-30);
  ui.hasta.value = daysFromToday(1); // "hasta" is exclusive: tomorrow includes today
  ui.keyForm.addEventListener("submit", guardarClave);
  ui.keyChange.addEventListener("click", cambiarClave);
  ui.searchForm.addEventListener("submit", buscar);
  $("#exportar-job").addEventListener("click", exportar);
  ui.reportForm.addEventListener("submit", generarReporte);
  ui.bulkForm.addEventListener("submit", exportarMasivo);
  ui.bulkDocumentos.addEventListener("input", leerDocumentosPronto);
  for (const radio of ui.bulkForm.elements.origen) {
    radio.addEventListener("change", mostrarOrigen);
  }
  mostrarOrigen(); // a reload may keep the radio the user had chosen
  showKeyState();
  if (apiKey.get()) {
    loadTipos();
  }
}

init();
