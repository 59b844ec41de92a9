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
 *
 * The page is five classic scripts, loaded in this order by index.html (no build step):
 *   app-core.js        constants, the page's elements and state, helpers, the API client
 *   app-connection.js  connecting to a server; the options form
 *   app-files.js       choosing files (input, drag and drop, folders)
 *   app-job.js         running a job: upload, progress (WebSocket or polling), results
 *   app-main.js        start-up: wires the events and connects
 * They share one global scope: a script's top-level code uses only names from the scripts
 * before it, and functions call across all of them once app-main.js runs init().
 */
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
