/* photoproc upload page: plain JavaScript, no build step, no dependencies.
 *
 * Served by the API (same origin, under "/" or ".../photoproc/") or opened from file://
 * against a configured API URL; a file:// page has the origin "null", so the server must
 * allow it (`photoproc serve --cors-origin null`). A classic script rather than an ES
 * module because Chromium refuses module scripts on file:// pages.
 *
 * The API it speaks (paths relative to the API URL):
 *   GET  api/processing-info          models (installed or not), option defaults, limits
 *   POST api/upload-and-process       multipart "files" + option fields -> 202 {job_id}
 *   WS   ws/job/{id}                  live progress; fallback: GET api/process-status/{id}
 *   POST api/cancel-job/{id}
 *   GET  api/download-results/{id}    ?format=zip, or ?format=individual&item=N[&output=K]
 *
 * Debug switch: "?transport=poll" in the page URL skips the WebSocket (tests use it to
 * exercise the polling fallback).
 */
(() => {
  "use strict";

  const KEY_API = "photoproc.apiUrl";
  const KEY_TOKEN = "photoproc.token";
  const KEY_OPTIONS = "photoproc.options";
  const KEY_JOB = "photoproc.lastJob";
  const POLL_MS = 1000;
  const POLL_MAX_MS = 8000;
  const ANNOUNCE_MS = 3000;
  const FILE_DEFAULT_API = "http://127.0.0.1:5000/";
  const ENDED = new Set(["completed", "failed", "cancelled"]);
  const STATUS_LABEL = {
    pending: "Waiting",
    processing: "Processing",
    done: "Done",
    failed: "Failed",
    cancelled: "Cancelled",
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    connection: $("connection"),
    connForm: $("conn-form"),
    apiUrl: $("api-url"),
    apiToken: $("api-token"),
    connPill: $("conn-pill"),
    connDetail: $("conn-detail"),
    apiDocs: $("api-docs"),
    jobForm: $("job-form"),
    dropzone: $("dropzone"),
    fileInput: $("file-input"),
    limitsHint: $("limits-hint"),
    selection: $("selection"),
    selectionSummary: $("selection-summary"),
    selectedList: $("selected-list"),
    clearFiles: $("clear-files"),
    bgGroup: $("bg-group"),
    faceGroup: $("face-group"),
    removeBg: $("opt-remove-bg"),
    model: $("opt-model"),
    modelHelp: $("model-help"),
    fill: $("opt-fill"),
    bgcolor: $("opt-bgcolor"),
    cropFace: $("opt-crop-face"),
    margin: $("opt-margin"),
    aspect: $("opt-aspect"),
    size: $("opt-size"),
    allFaces: $("opt-all-faces"),
    format: $("opt-format"),
    formatHelp: $("format-help"),
    start: $("start"),
    cancel: $("cancel"),
    formMessage: $("form-message"),
    progressCard: $("progress-card"),
    uploadProgress: $("upload-progress"),
    uploadText: $("upload-text"),
    jobProgress: $("job-progress"),
    jobText: $("job-text"),
    jobStatus: $("job-status"),
    announcer: $("announcer"),
    itemList: $("item-list"),
    resultsCard: $("results-card"),
    resultsCount: $("results-count"),
    downloadZip: $("download-zip"),
    results: $("results"),
  };

  const params = new URLSearchParams(location.search);
  const forcePolling = params.get("transport") === "poll";
  const servedOverHttp = location.protocol === "http:" || location.protocol === "https:";

  const state = {
    info: null,
    selection: [], // {file, name, key}
    busy: false,
    upload: null, // {abort} while the body is being sent
    cancelling: false,
    jobId: null,
    job: null,
    endedFor: null,
    socket: null,
    pollTimer: 0,
    itemsTimer: 0,
    itemRows: new Map(), // item index -> <li>
    thumbs: new Set(), // "index:output"
    announced: 0,
    announceTimer: 0,
  };

  // ---------------------------------------------------------------- small helpers

  // Storage throws in some private modes and sandboxed frames: the page works without it.
  const store = {
    get(area, key) {
      try {
        return window[area].getItem(key);
      } catch {
        return null;
      }
    },
    set(area, key, value) {
      try {
        if (value === null || value === undefined || value === "") window[area].removeItem(key);
        else window[area].setItem(key, value);
      } catch {
        /* not persisted: fine */
      }
    },
  };

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function formatBytes(n) {
    if (!Number.isFinite(n)) return "";
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return i === 0 ? `${n} bytes` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
  }

  function plural(n, word, many) {
    return `${n} ${n === 1 ? word : many || word + "s"}`;
  }

  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|;\\s*)" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  function isZip(file) {
    return /\.zip$/i.test(file.name) || /zip/.test(file.type || "");
  }

  // ---------------------------------------------------------------- the API client

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status || 0;
      this.code = code || "";
    }
  }

  function unreachable(base) {
    let message = `Cannot reach the API at ${base}. Is \`photoproc serve\` running there?`;
    if (location.protocol === "file:") {
      message += " A page opened from a file needs the server started with --cors-origin null.";
    }
    return new ApiError(message, 0, "unreachable");
  }

  function parseBody(status, text) {
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (status >= 200 && status < 300) {
      if (body === null) throw new ApiError("The server did not answer with JSON.", status, "bad_json");
      return body;
    }
    if (body && typeof body.message === "string") {
      throw new ApiError(body.message, status, body.error);
    }
    throw new ApiError(`The server answered HTTP ${status}.`, status, "http_error");
  }

  const api = {
    base: "", // absolute, ends with "/"
    token: "",

    url(path, query) {
      const url = new URL(path, this.base);
      for (const [key, value] of Object.entries(query || {})) {
        if (value !== null && value !== undefined) url.searchParams.set(key, String(value));
      }
      return url.href;
    },

    // <img>, <a download> and WebSocket cannot send headers: they carry the token in the query.
    tokenUrl(path, query) {
      return this.url(path, this.token ? { ...query, token: this.token } : query);
    },

    wsUrl(path) {
      const url = new URL(this.tokenUrl(path));
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      return url.href;
    },

    headers() {
      const headers = {};
      if (this.token) headers.Authorization = `token ${this.token}`;
      // Under jupyter_server, writes need the _xsrf cookie echoed in a header.
      if (new URL(this.base).origin === location.origin) {
        const xsrf = cookie("_xsrf");
        if (xsrf) headers["X-XSRFToken"] = xsrf;
      }
      return headers;
    },

    async request(method, path, query) {
      let response;
      try {
        response = await fetch(this.url(path, query), {
          method,
          headers: this.headers(),
          cache: "no-store",
        });
      } catch {
        throw unreachable(this.base);
      }
      return parseBody(response.status, await response.text());
    },

    /** POST the form with XMLHttpRequest: fetch() cannot report upload progress. */
    upload(form, on) {
      const xhr = new XMLHttpRequest();
      const promise = new Promise((resolve, reject) => {
        xhr.open("POST", this.url("api/upload-and-process"));
        for (const [key, value] of Object.entries(this.headers())) xhr.setRequestHeader(key, value);
        xhr.upload.onprogress = (event) => on.progress(event.loaded, event.total);
        xhr.upload.onload = () => on.sent();
        xhr.onload = () => {
          try {
            resolve(parseBody(xhr.status, xhr.responseText));
          } catch (err) {
            reject(err);
          }
        };
        xhr.onerror = () => {
          const err = unreachable(this.base);
          err.message =
            "The upload failed: the connection was closed. The server may have refused a body " +
            "over its size limit, or stopped.";
          reject(err);
        };
        xhr.onabort = () => reject(new ApiError("Upload cancelled.", 0, "aborted"));
        xhr.send(form);
      });
      return { promise, abort: () => xhr.abort() };
    },
  };

  // ---------------------------------------------------------------- connection

  function pageDir() {
    return location.origin + location.pathname.replace(/[^/]*$/, "");
  }

  function defaultApiUrl() {
    return servedOverHttp ? pageDir() : FILE_DEFAULT_API;
  }

  /** "host:5000", "http://host:5000/api/" and "http://host:5000" all mean the same API. */
  function normaliseBase(text) {
    let value = text.trim();
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) value = `http://${value}`;
    const url = new URL(value);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new ApiError("The API URL must start with http:// or https://.", 0, "bad_url");
    }
    let path = url.pathname.replace(/\/api(\/.*)?$/, "/");
    if (!path.endsWith("/")) path += "/";
    return `${url.origin}${path}`;
  }

  /** Served pages try their own folder, then its parent: the Voilà host serves the page at
   * ".../photoproc/" but the API one level up, jupyter_server serves both at ".../photoproc/". */
  function candidateBases() {
    const saved = store.get("localStorage", KEY_API);
    if (saved) return [saved];
    const first = defaultApiUrl();
    const bases = [first];
    if (servedOverHttp) {
      const parent = first.replace(/[^/]+\/$/, "");
      if (parent !== first && parent.length > location.origin.length) bases.push(parent);
    }
    return bases;
  }

  function setConn(stateName, pill, detail) {
    el.connPill.dataset.state = stateName;
    el.connPill.textContent = pill;
    el.connDetail.textContent = detail || "";
  }

  async function connect(bases) {
    setConn("busy", "Connecting…", "");
    let failure = null;
    for (const base of bases) {
      api.base = base;
      try {
        const info = await api.request("GET", "api/processing-info");
        if (!info || !Array.isArray(info.models)) {
          throw new ApiError(`${base} does not look like a photoproc API.`, 0, "not_api");
        }
        onConnected(info);
        return true;
      } catch (err) {
        failure = err;
        if (err.status === 401) break; // the right server; it wants its token
      }
    }
    state.info = null;
    el.connection.open = true;
    if (failure && failure.status === 401) {
      setConn("error", "Token needed", `${api.base} needs its token: enter it above.`);
      el.apiToken.focus();
    } else {
      setConn("error", "Not connected", failure ? failure.message : "");
    }
    el.model.replaceChildren(h("option", { value: "", text: "Connect to a server first" }));
    return false;
  }

  function onConnected(info) {
    state.info = info;
    const host = new URL(api.base).host;
    const installed = info.models.filter((m) => m.installed).length;
    setConn(
      "ok",
      `Connected · ${host}`,
      `Connected to ${api.base} — ${plural(installed, "model")} installed.`,
    );
    el.apiUrl.placeholder = api.base;
    el.apiDocs.href = api.url("api/openapi.json");
    applyInfo(info);
    resumeLastJob();
  }

  function onConnSubmit(event) {
    event.preventDefault();
    const text = el.apiUrl.value.trim();
    api.token = el.apiToken.value.trim();
    store.set("sessionStorage", KEY_TOKEN, api.token);
    let bases;
    if (text) {
      try {
        bases = [normaliseBase(text)];
      } catch (err) {
        setConn("error", "Not connected", err.message || "That is not a URL.");
        el.apiUrl.focus();
        return;
      }
      el.apiUrl.value = bases[0];
      store.set("localStorage", KEY_API, bases[0]);
    } else {
      store.set("localStorage", KEY_API, null);
      bases = candidateBases();
    }
    connect(bases).then((ok) => {
      if (ok) el.connection.open = false;
    });
  }

  // ---------------------------------------------------------------- options

  function optionEl(value, text) {
    return h("option", { value, text });
  }

  function renderModels(info) {
    const models = info.models;
    const installed = models.filter((m) => m.installed);
    const missing = models.filter((m) => !m.installed);
    const groups = [];
    if (installed.length) {
      const group = h("optgroup", { label: "Installed" });
      for (const m of installed) {
        group.append(optionEl(m.name, m.offline ? `${m.name} (offline)` : m.name));
      }
      groups.push(group);
    }
    if (missing.length) {
      const group = h("optgroup", { label: "Not installed (downloaded on first use)" });
      for (const m of missing) group.append(optionEl(m.name, `${m.name} — not installed`));
      groups.push(group);
    }
    el.model.replaceChildren(...groups);
    el.model.value = preferredModel(info);
  }

  /** The server's default when it is installed; otherwise an installed one, grabcut first. */
  function preferredModel(info) {
    const byName = new Map(info.models.map((m) => [m.name, m]));
    const fallback = byName.get(info.default_model);
    if (fallback && fallback.installed) return fallback.name;
    const grabcut = byName.get("grabcut");
    if (grabcut && grabcut.installed) return grabcut.name;
    const firstInstalled = info.models.find((m) => m.installed);
    return (firstInstalled || fallback || info.models[0] || { name: "" }).name;
  }

  function renderChoices(select, values, labels) {
    const current = select.value;
    select.replaceChildren(...values.map((v) => optionEl(v, (labels && labels[v]) || v)));
    if (values.includes(current)) select.value = current;
  }

  function applyInfo(info) {
    const defaults = info.options || {};
    const choices = info.choices || {};
    renderModels(info);
    renderChoices(el.format, choices.format || ["png"], { png: "PNG", webp: "WebP", jpeg: "JPEG" });
    renderChoices(el.aspect, choices.aspect || ["1:1"], { free: "free (the face box)" });
    el.removeBg.checked = defaults.remove_bg !== false;
    el.cropFace.checked = Boolean(defaults.crop_face);
    el.allFaces.checked = Boolean(defaults.all_faces);
    if (defaults.format) el.format.value = defaults.format;
    if (defaults.aspect) el.aspect.value = defaults.aspect;
    if (defaults.face_margin !== undefined) el.margin.value = String(defaults.face_margin);
    el.size.value = defaults.output_size ? String(defaults.output_size) : "";
    if (Array.isArray(defaults.bgcolor)) {
      el.fill.checked = true;
      el.bgcolor.value = rgbToHex(defaults.bgcolor);
    }
    restoreOptions();
    const limits = info.limits || {};
    const parts = ["JPEG, PNG, WebP, BMP, TIFF, GIF, HEIC and ZIP."];
    if (limits.max_upload_bytes) {
      parts.push(
        `Up to ${formatBytes(limits.max_upload_bytes)}` +
          (limits.max_upload_files
            ? ` and ${limits.max_upload_files.toLocaleString("en")} files`
            : "") +
          " per upload.",
      );
    }
    el.limitsHint.textContent = parts.join(" ");
    syncOptions();
  }

  function rgbToHex(rgba) {
    return "#" + rgba.slice(0, 3).map((c) => Number(c).toString(16).padStart(2, "0")).join("");
  }

  const SAVED_CONTROLS = {
    remove_bg: "removeBg",
    model: "model",
    fill: "fill",
    bgcolor: "bgcolor",
    crop_face: "cropFace",
    face_margin: "margin",
    aspect: "aspect",
    output_size: "size",
    all_faces: "allFaces",
    format: "format",
  };

  function saveOptions() {
    const saved = {};
    for (const [key, name] of Object.entries(SAVED_CONTROLS)) {
      const control = el[name];
      saved[key] = control.type === "checkbox" ? control.checked : control.value;
    }
    store.set("localStorage", KEY_OPTIONS, JSON.stringify(saved));
  }

  function restoreOptions() {
    let saved;
    try {
      saved = JSON.parse(store.get("localStorage", KEY_OPTIONS) || "null");
    } catch {
      saved = null;
    }
    if (!saved || typeof saved !== "object") return;
    for (const [key, name] of Object.entries(SAVED_CONTROLS)) {
      if (!(key in saved)) continue;
      const control = el[name];
      if (control.type === "checkbox") {
        control.checked = Boolean(saved[key]);
      } else if (control.tagName === "SELECT") {
        // A model or choice the server no longer offers keeps the server's default.
        if ([...control.options].some((o) => o.value === saved[key])) control.value = saved[key];
      } else {
        control.value = String(saved[key]);
      }
    }
  }

  function describeModel() {
    const info = state.info;
    const model = info && info.models.find((m) => m.name === el.model.value);
    if (!model) {
      el.modelHelp.textContent = "";
      return;
    }
    const bits = [model.description];
    if (model.installed) {
      bits.push(model.offline ? "Installed; needs no download." : "Installed.");
    } else {
      const size = model.size_bytes ? ` (${formatBytes(model.size_bytes)})` : "";
      bits.push(
        `Not installed: the server downloads it${size} on first use, ` +
          `or run “photoproc models pull ${model.name}” there.`,
      );
    }
    if (model.licence) bits.push(`Licence: ${model.licence}.`);
    el.modelHelp.textContent = bits.join(" ");
  }

  const FORMAT_HELP = {
    png: "PNG keeps transparency.",
    webp: "Lossless WebP keeps transparency and is smaller than PNG.",
    jpeg: "JPEG has no transparency: the background is white unless you pick a colour.",
  };

  function syncOptions() {
    el.bgGroup.disabled = !el.removeBg.checked;
    el.faceGroup.disabled = !el.cropFace.checked;
    el.bgcolor.disabled = !el.fill.checked;
    el.formatHelp.textContent = FORMAT_HELP[el.format.value] || "";
    describeModel();
  }

  function readOptions() {
    const options = {
      remove_bg: el.removeBg.checked,
      crop_face: el.cropFace.checked,
      format: el.format.value,
    };
    if (el.model.value) options.model = el.model.value;
    if (options.remove_bg && el.fill.checked) options.bgcolor = el.bgcolor.value;
    if (options.crop_face) {
      options.face_margin = el.margin.value;
      options.aspect = el.aspect.value;
      options.all_faces = el.allFaces.checked;
      if (el.size.value.trim()) options.output_size = el.size.value.trim();
    }
    return options;
  }

  /** The problems the server would refuse anyway, found before a large upload starts. */
  function validate() {
    if (!state.info) return ["Connect to a photoproc server first.", el.apiUrl];
    if (!state.selection.length) return ["Choose at least one photo or ZIP archive.", el.fileInput];
    if (!el.removeBg.checked && !el.cropFace.checked) {
      return ["Choose what to do: remove the background, crop to the face, or both.", el.removeBg];
    }
    if (el.cropFace.checked) {
      const margin = Number(el.margin.value);
      if (el.margin.value.trim() === "" || !(margin >= 0 && margin <= 5)) {
        return ["The face margin must be a number between 0 and 5.", el.margin];
      }
      const size = el.size.value.trim();
      const pixels = Number(size);
      if (size && !(Number.isInteger(pixels) && pixels >= 16 && pixels <= 8192)) {
        return ["The longest side must be a whole number between 16 and 8192.", el.size];
      }
    }
    const limits = state.info.limits || {};
    const total = state.selection.reduce((sum, s) => sum + s.file.size, 0);
    if (limits.max_upload_bytes && total > limits.max_upload_bytes) {
      return [
        `The files add up to ${formatBytes(total)}; the server accepts ` +
          `${formatBytes(limits.max_upload_bytes)} per upload. Send them in smaller batches.`,
        el.fileInput,
      ];
    }
    if (limits.max_upload_files && state.selection.length > limits.max_upload_files) {
      return [
        `The server accepts ${limits.max_upload_files} files per upload; ` +
          `${state.selection.length} are chosen. Put them in a ZIP or send smaller batches.`,
        el.fileInput,
      ];
    }
    return null;
  }

  // ---------------------------------------------------------------- choosing files

  function addFiles(entries) {
    const known = new Set(state.selection.map((s) => s.key));
    for (const { file, name } of entries) {
      const key = `${name}\u0000${file.size}\u0000${file.lastModified}`;
      if (known.has(key)) continue;
      known.add(key);
      state.selection.push({ file, name, key });
    }
    renderSelection();
    showFormMessage("");
  }

  function renderSelection() {
    const items = state.selection;
    el.selection.hidden = items.length === 0;
    const total = items.reduce((sum, s) => sum + s.file.size, 0);
    const zips = items.filter((s) => isZip(s.file)).length;
    el.selectionSummary.textContent =
      `${plural(items.length, "file")} chosen, ${formatBytes(total)}` +
      (zips ? ` (${plural(zips, "ZIP archive")})` : "");
    el.selectedList.replaceChildren(
      ...items.map((entry) => {
        const remove = h("button", {
          type: "button",
          class: "icon-button",
          "aria-label": `Remove ${entry.name}`,
          title: "Remove",
          text: "×",
        });
        remove.addEventListener("click", () => {
          state.selection = state.selection.filter((s) => s !== entry);
          renderSelection();
          (el.selectedList.querySelector("button") || el.fileInput).focus();
        });
        return h(
          "li",
          { class: "file-row" },
          h("span", { class: "file-name", text: entry.name, title: entry.name }),
          isZip(entry.file) ? h("span", { class: "badge", text: "ZIP" }) : null,
          h("span", { class: "file-size", text: formatBytes(entry.file.size) }),
          remove,
        );
      }),
    );
  }

  /** Files, and the files inside dropped folders (hidden files such as .DS_Store skipped). */
  async function droppedFiles(dataTransfer) {
    // Entries must be taken synchronously, during the drop event.
    const entries = [...(dataTransfer.items || [])]
      .filter((item) => item.kind === "file")
      .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
    if (!entries.length || entries.some((entry) => !entry)) {
      return [...dataTransfer.files].map((file) => ({ file, name: file.name }));
    }
    const found = [];
    const walk = async (entry, prefix) => {
      if (entry.name.startsWith(".")) return;
      if (entry.isFile) {
        const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
        found.push({ file, name: prefix + file.name });
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
          if (!batch.length) break;
          for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
        }
      }
    };
    for (const entry of entries) await walk(entry, "");
    return found;
  }

  function setupDragAndDrop() {
    let depth = 0;
    const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    // The whole page is a drop target, so a near miss never navigates away to the file.
    document.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      depth += 1;
      el.dropzone.classList.add("dragging");
    });
    document.addEventListener("dragleave", (event) => {
      if (!hasFiles(event)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) el.dropzone.classList.remove("dragging");
    });
    document.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = state.busy ? "none" : "copy";
    });
    document.addEventListener("drop", async (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      el.dropzone.classList.remove("dragging");
      if (state.busy) return;
      try {
        addFiles(await droppedFiles(event.dataTransfer));
      } catch (err) {
        showFormMessage(`Could not read the dropped files: ${err.message || err}`);
      }
    });
  }

  // ---------------------------------------------------------------- running a job

  function showFormMessage(text) {
    el.formMessage.textContent = text;
  }

  function setBusy(busy) {
    // A button that becomes disabled drops the keyboard focus: hand it to its partner.
    const focused = document.activeElement === (busy ? el.start : el.cancel);
    state.busy = busy;
    el.start.disabled = busy;
    el.cancel.disabled = !busy;
    if (focused) (busy ? el.cancel : el.start).focus();
    el.jobForm.setAttribute("aria-busy", String(busy));
    el.dropzone.classList.toggle("locked", busy);
  }

  function setMeter(progress, label, percentage, text) {
    const pct = Math.max(0, Math.min(100, Number(percentage) || 0));
    progress.value = pct;
    progress.setAttribute("value", String(pct));
    label.textContent = text !== undefined ? text : `${Math.floor(pct)}%`;
  }

  function announce(text, urgent) {
    clearTimeout(state.announceTimer);
    const wait = urgent ? 0 : Math.max(0, state.announced + ANNOUNCE_MS - Date.now());
    state.announceTimer = setTimeout(() => {
      state.announced = Date.now();
      el.announcer.textContent = text;
    }, wait);
  }

  function resetRun() {
    stopWatching();
    state.jobId = null;
    state.job = null;
    state.endedFor = null;
    state.itemRows.clear();
    state.thumbs.clear();
    el.itemList.replaceChildren();
    el.results.replaceChildren();
    el.resultsCard.hidden = true;
    el.downloadZip.removeAttribute("href");
    el.progressCard.hidden = false;
    el.progressCard.dataset.status = "uploading";
    delete el.progressCard.dataset.transport;
    el.jobStatus.textContent = "";
    setMeter(el.uploadProgress, el.uploadText, 0);
    setMeter(el.jobProgress, el.jobText, 0, "waiting");
  }

  async function startJob(event) {
    event.preventDefault();
    if (state.busy) return;
    const problem = validate();
    if (problem) {
      showFormMessage(problem[0]);
      if (problem[1] === el.apiUrl) el.connection.open = true;
      (problem[1] === el.fileInput ? el.fileInput : problem[1]).focus();
      return;
    }
    showFormMessage("");
    saveOptions();
    const form = new FormData();
    for (const [key, value] of Object.entries(readOptions())) form.append(key, String(value));
    for (const entry of state.selection) form.append("files", entry.file, entry.name);

    resetRun();
    setBusy(true);
    el.jobStatus.textContent = `Uploading ${plural(state.selection.length, "file")}…`;
    announce("Upload started.", true);
    const upload = api.upload(form, {
      progress(loaded, total) {
        const pct = total ? (100 * loaded) / total : 0;
        setMeter(el.uploadProgress, el.uploadText, pct);
        el.jobStatus.textContent = `Uploading… ${formatBytes(loaded)} of ${formatBytes(total)}`;
      },
      sent() {
        setMeter(el.uploadProgress, el.uploadText, 100);
        el.jobStatus.textContent = "Upload complete; the server is unpacking the files…";
      },
    });
    state.upload = upload;
    let job;
    try {
      job = await upload.promise;
    } catch (err) {
      state.upload = null;
      setBusy(false);
      el.progressCard.dataset.status = "error";
      el.jobStatus.textContent = err.message;
      if (err.code === "aborted") setMeter(el.uploadProgress, el.uploadText, 0, "cancelled");
      else showFormMessage(err.message);
      announce(err.message, true);
      return;
    }
    state.upload = null;
    setMeter(el.uploadProgress, el.uploadText, 100);
    follow(job);
  }

  /** Show a job (just submitted, or remembered from an earlier visit) and watch it. */
  function follow(job) {
    state.jobId = job.id || job.job_id;
    store.set("sessionStorage", KEY_JOB, JSON.stringify({ base: api.base, id: state.jobId }));
    applyJob(job);
    if (!ENDED.has(job.status)) watch(state.jobId);
  }

  function isStale(job) {
    const current = state.job;
    if (!current || current.id !== job.id) return false;
    if (ENDED.has(current.status)) return true; // nothing comes after a terminal state
    return Boolean(job.updated_at && current.updated_at && job.updated_at < current.updated_at);
  }

  function applyJob(job) {
    if (!job || (job.id || job.job_id) !== state.jobId) return;
    job.id = job.id || job.job_id;
    if (isStale(job)) return;
    state.job = job;
    const progress = job.progress || {};
    const total = progress.total || 0;
    const processed = progress.processed || 0;
    const failed = progress.failed || 0;
    setMeter(el.jobProgress, el.jobText, progress.percentage);
    el.progressCard.dataset.status = job.status;
    el.jobStatus.textContent = statusLine(job.status, processed, failed, total, job.error);
    if (Array.isArray(job.items)) renderItems(job.items);
    else if (job.event && !ENDED.has(job.status)) refreshItemsSoon(); // a big job's WS message
    if (ENDED.has(job.status)) {
      jobEnded(job);
    } else {
      announce(`${Math.floor(progress.percentage || 0)}% — ${el.jobStatus.textContent}`);
    }
  }

  function statusLine(status, processed, failed, total, error) {
    const done = processed - failed;
    const failedText = failed ? `, ${failed} failed` : "";
    switch (status) {
      case "pending":
        return processed
          ? `Processed ${processed} of ${total}${failedText}; waiting for the worker…`
          : `${plural(total, "file")} queued; waiting for the worker…`;
      case "processing":
        return `Processed ${processed} of ${total}${failedText}…`;
      case "completed":
        return `Finished: ${done} of ${plural(total, "file")} processed${failedText}.`;
      case "cancelled":
        return `Cancelled after ${processed} of ${total}${failedText}.`;
      case "failed":
        return `Failed${error ? `: ${error}` : "."}${total ? ` (${failed} of ${total} failed)` : ""}`;
      default:
        return status;
    }
  }

  /** WebSocket messages omit the items of very large jobs: fetch them now and then. */
  function refreshItemsSoon() {
    if (state.itemsTimer) return;
    const id = state.jobId;
    state.itemsTimer = setTimeout(async () => {
      state.itemsTimer = 0;
      try {
        applyJob(await api.request("GET", `api/process-status/${id}`));
      } catch {
        /* the next progress message tries again */
      }
    }, 2000);
  }

  function renderItems(items) {
    for (const item of items) {
      const signature = `${item.status}|${item.error || ""}|${(item.warnings || []).join("|")}|${item.outputs}`;
      let row = state.itemRows.get(item.index);
      if (row && row.dataset.signature === signature) continue;
      const next = itemRow(item);
      next.dataset.signature = signature;
      if (row) row.replaceWith(next);
      else el.itemList.append(next);
      state.itemRows.set(item.index, next);
      if (item.status === "done" && item.outputs > 0) addThumbs(item);
    }
  }

  function itemRow(item) {
    const row = h(
      "li",
      { class: `file-row item status-${item.status}`, "data-index": item.index },
      h("span", { class: "file-name", text: item.name, title: item.name }),
      h("span", { class: `status-badge ${item.status}`, text: STATUS_LABEL[item.status] || item.status }),
    );
    if (item.error) row.append(h("p", { class: "item-error", text: item.error }));
    for (const warning of item.warnings || []) {
      row.append(h("p", { class: "item-warning", text: warning }));
    }
    return row;
  }

  function resultUrl(item, output) {
    const query = { format: "individual", item: item.index };
    if (output) query.output = output;
    return api.tokenUrl(`api/download-results/${state.jobId}`, query);
  }

  function addThumbs(item) {
    for (let k = 0; k < item.outputs; k += 1) {
      const key = `${item.index}:${k}`;
      if (state.thumbs.has(key)) continue;
      state.thumbs.add(key);
      const url = resultUrl(item, k);
      const label = item.outputs > 1 ? `${item.name} (${k + 1} of ${item.outputs})` : item.name;
      const img = h("img", {
        src: url,
        alt: `Result for ${label}`,
        loading: "lazy",
        decoding: "async",
      });
      img.addEventListener("error", () => {
        img.replaceWith(h("span", { class: "thumb-missing", text: "Preview unavailable" }));
      });
      el.results.append(
        h(
          "li",
          { class: "thumb", "data-index": item.index },
          h("div", { class: "checker" }, img),
          h(
            "div",
            { class: "thumb-caption" },
            h("span", { class: "thumb-name", text: label, title: label }),
            h("a", {
              class: "button small secondary",
              href: url,
              download: "",
              "aria-label": `Download the result for ${label}`,
              title: "Download",
              text: "↓",
            }),
          ),
        ),
      );
    }
    el.resultsCard.hidden = false;
    el.resultsCount.textContent = `(${state.thumbs.size})`;
  }

  async function jobEnded(job) {
    if (state.endedFor === job.id) return;
    state.endedFor = job.id;
    stopWatching();
    setBusy(false);
    if (!Array.isArray(job.items)) {
      try {
        const full = await api.request("GET", `api/process-status/${job.id}`);
        if (Array.isArray(full.items) && state.jobId === job.id) renderItems(full.items);
      } catch {
        /* the counts are already shown */
      }
    }
    if (state.jobId !== job.id) return;
    const progress = job.progress || {};
    const succeeded = (progress.processed || 0) - (progress.failed || 0);
    if (succeeded > 0 || state.thumbs.size > 0) {
      el.resultsCard.hidden = false;
      el.downloadZip.href = api.tokenUrl(`api/download-results/${job.id}`, { format: "zip" });
    }
    announce(el.jobStatus.textContent, true);
  }

  // ---------------------------------------------------------------- progress transport

  function watch(id) {
    stopWatching();
    if (forcePolling || !("WebSocket" in window)) {
      poll(id, 0);
      return;
    }
    let socket;
    try {
      socket = new WebSocket(api.wsUrl(`ws/job/${id}`));
    } catch {
      poll(id, 0);
      return;
    }
    state.socket = socket;
    let final = false;
    socket.addEventListener("open", () => {
      el.progressCard.dataset.transport = "websocket";
    });
    socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string" || event.data === "pong") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.event === "final") final = true;
      applyJob(message);
    });
    socket.addEventListener("close", () => {
      if (state.socket !== socket) return;
      state.socket = null;
      // Refused (proxy, auth, old server) or dropped before the end: poll instead.
      if (!final && state.jobId === id && !ENDED.has(state.job?.status)) poll(id, 500);
    });
  }

  function poll(id, delay) {
    el.progressCard.dataset.transport = "polling";
    let wait = POLL_MS;
    const tick = async () => {
      state.pollTimer = 0;
      if (state.jobId !== id) return;
      try {
        const job = await api.request("GET", `api/process-status/${id}`);
        wait = POLL_MS;
        applyJob(job);
        if (ENDED.has(job.status)) return;
      } catch (err) {
        if (err.status === 404) {
          jobGone(id);
          return;
        }
        wait = Math.min(wait * 2, POLL_MAX_MS);
        el.jobStatus.textContent = `${err.message} Retrying…`;
      }
      if (state.jobId === id) state.pollTimer = setTimeout(tick, wait);
    };
    state.pollTimer = setTimeout(tick, delay);
  }

  function jobGone(id) {
    if (state.jobId !== id) return;
    stopWatching();
    setBusy(false);
    el.progressCard.dataset.status = "error";
    el.jobStatus.textContent = "The job is gone from the server (deleted or expired).";
    store.set("sessionStorage", KEY_JOB, null);
  }

  function stopWatching() {
    clearTimeout(state.pollTimer);
    clearTimeout(state.itemsTimer);
    state.pollTimer = 0;
    state.itemsTimer = 0;
    const socket = state.socket;
    state.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "done");
  }

  async function cancel() {
    if (state.upload) {
      state.upload.abort();
      return;
    }
    const id = state.jobId;
    // The button stays enabled (and focused) until the job ends; a second click waits.
    if (!id || state.cancelling || ENDED.has(state.job?.status)) return;
    state.cancelling = true;
    el.jobStatus.textContent = "Cancelling…";
    try {
      applyJob(await api.request("POST", `api/cancel-job/${id}`));
    } catch (err) {
      showFormMessage(`Could not cancel: ${err.message}`);
    } finally {
      state.cancelling = false;
    }
  }

  /** After a reload, show the job this tab last ran (results stay downloadable). */
  async function resumeLastJob() {
    if (state.jobId || state.busy) return;
    let last;
    try {
      last = JSON.parse(store.get("sessionStorage", KEY_JOB) || "null");
    } catch {
      last = null;
    }
    if (!last || last.base !== api.base || typeof last.id !== "string") return;
    try {
      const job = await api.request("GET", `api/process-status/${last.id}`);
      if (state.jobId || state.busy) return;
      resetRun();
      setMeter(el.uploadProgress, el.uploadText, 100, "done");
      if (!ENDED.has(job.status)) setBusy(true);
      follow(job);
    } catch {
      store.set("sessionStorage", KEY_JOB, null);
    }
  }

  // ---------------------------------------------------------------- start-up

  function init() {
    // A token in the page URL (as `photoproc serve` prints it) is taken, then removed from
    // the address bar so that it is not bookmarked or shared by accident.
    const urlToken = params.get("token");
    if (urlToken) {
      store.set("sessionStorage", KEY_TOKEN, urlToken);
      params.delete("token");
      const query = params.toString();
      try {
        history.replaceState(null, "", location.pathname + (query ? `?${query}` : "") + location.hash);
      } catch {
        /* file:// in some browsers */
      }
    }
    api.token = urlToken || store.get("sessionStorage", KEY_TOKEN) || "";
    el.apiToken.value = api.token;
    const saved = store.get("localStorage", KEY_API);
    el.apiUrl.value = saved || "";
    el.apiUrl.placeholder = defaultApiUrl();
    if (!servedOverHttp && !saved) el.connection.open = true;

    el.connForm.addEventListener("submit", onConnSubmit);
    el.jobForm.addEventListener("submit", startJob);
    el.cancel.addEventListener("click", cancel);
    el.fileInput.addEventListener("change", () => {
      addFiles([...el.fileInput.files].map((file) => ({ file, name: file.name })));
      el.fileInput.value = ""; // choosing the same file again fires "change" again
    });
    el.clearFiles.addEventListener("click", () => {
      state.selection = [];
      renderSelection();
      el.fileInput.focus();
    });
    for (const control of [el.removeBg, el.cropFace, el.fill, el.format, el.model]) {
      control.addEventListener("change", syncOptions);
    }
    el.jobForm.addEventListener("change", (event) => {
      if (event.target !== el.fileInput && state.info) saveOptions();
    });
    el.downloadZip.addEventListener("click", (event) => {
      if (!el.downloadZip.hasAttribute("href")) event.preventDefault();
    });
    setupDragAndDrop();
    syncOptions();
    connect(candidateBases());
  }

  init();
})();
