/* PhotoProcessor: the photoproc upload page as one React component (hooks only, React 18/19).
 *
 * Copy this file and PhotoProcessor.css into your app and render <PhotoProcessor />. It talks
 * to `photoproc serve` (paths relative to the API URL):
 *   GET  api/processing-info          models (installed or not), option defaults, limits
 *   POST api/upload-and-process       multipart "files" + option fields -> 202 {job_id}
 *   WS   ws/job/{id}                  live progress; fallback: GET api/process-status/{id}
 *   POST api/cancel-job/{id}
 *   GET  api/download-results/{id}    ?format=zip, or ?format=individual&item=N[&output=K]
 *
 * From another origin the server must allow the page: `photoproc serve --cors-origin ORIGIN`.
 * A token goes in the Authorization header; <img>, <a download> and WebSocket cannot send
 * headers, so they carry it as ?token=… (the server accepts both).
 */
import { useCallback, useEffect, useId, useMemo, useReducer, useRef, useState } from "react";
import "./PhotoProcessor.css";

const POLL_MS = 1000;
const POLL_MAX_MS = 5000;
const ITEMS_REFRESH_MS = 2000;
const ENDED = new Set(["completed", "failed", "cancelled"]);
const STATUS_LABEL = {
  pending: "Waiting",
  processing: "Processing",
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};
const FORMAT_LABEL = { png: "PNG", webp: "WebP", jpeg: "JPEG" };
const ASPECT_LABEL = { free: "free (the face box)" };
const FORMAT_HELP = {
  png: "PNG keeps transparency.",
  webp: "Lossless WebP keeps transparency and is smaller than PNG.",
  jpeg: "JPEG has no transparency: the background is white unless you pick a colour.",
};
const ACCEPT =
  "image/*,.jpg,.jpeg,.png,.webp,.bmp,.tif,.tiff,.gif,.heic,.heif,.zip,application/zip";

// ------------------------------------------------------------------------ small helpers

/** Build-time variables of Create React App (and bundlers that define them); a bundler
 * without `process` (Vite) throws here, which means "not set". */
function envDefaults() {
  let api;
  let ws;
  try {
    api = process.env.REACT_APP_API_URL;
  } catch {
    api = undefined;
  }
  try {
    ws = process.env.REACT_APP_WS_URL;
  } catch {
    ws = undefined;
  }
  return { api: api || "", ws: ws || "" };
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

function plural(n, word) {
  return `${n} ${n === 1 ? word : `${word}s`}`;
}

function isZip(file) {
  return /\.zip$/i.test(file.name) || /zip/.test(file.type || "");
}

function cookie(name) {
  const match = document.cookie.match(new RegExp(`(?:^|;\\s*)${name}=([^;]*)`));
  return match ? decodeURIComponent(match[1]) : "";
}

function rgbToHex(rgba) {
  return `#${rgba
    .slice(0, 3)
    .map((c) => Number(c).toString(16).padStart(2, "0"))
    .join("")}`;
}

/** "host:5000", "http://host:5000/api/" and "/photoproc/" all name an API base ending in "/". */
function normaliseBase(text, fallback) {
  let value = (text || "").trim();
  if (!value) return fallback;
  if (!/^[a-z][a-z0-9+.-]*:/i.test(value) && !value.startsWith("/")) value = `http://${value}`;
  const url = new URL(value, window.location.href);
  let path = url.pathname.replace(/\/api(\/.*)?$/, "/");
  if (!path.endsWith("/")) path += "/";
  return `${url.protocol}//${url.host}${path}`;
}

function wsBaseFrom(text, apiBase) {
  const base = normaliseBase(text, apiBase);
  return base.replace(/^http(s?):/i, "ws$1:");
}

// ------------------------------------------------------------------------ the API client

export class PhotoprocApiError extends Error {
  constructor(message, status = 0, code = "") {
    super(message);
    this.name = "PhotoprocApiError";
    this.status = status;
    this.code = code;
  }
}

/** The API's JSON errors are {"error": code, "message": text}: show the text. */
function parseBody(status, text) {
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (status >= 200 && status < 300) {
    if (body === null) throw new PhotoprocApiError("The server did not answer with JSON.", status, "bad_json");
    return body;
  }
  if (body && typeof body.message === "string") {
    throw new PhotoprocApiError(body.message, status, body.error || "");
  }
  throw new PhotoprocApiError(`The server answered HTTP ${status}.`, status, "http_error");
}

function makeClient(apiBase, wsBase, token) {
  const unreachable = () =>
    new PhotoprocApiError(
      `Cannot reach the photoproc API at ${apiBase}. Is \`photoproc serve\` running there` +
        " (with --cors-origin for this page's origin when it is another one)?",
      0,
      "unreachable",
    );
  const client = {
    apiBase,
    url(path, query) {
      const url = new URL(path, apiBase);
      for (const [key, value] of Object.entries(query || {})) {
        if (value !== null && value !== undefined) url.searchParams.set(key, String(value));
      }
      return url.href;
    },
    tokenUrl(path, query) {
      return client.url(path, token ? { ...query, token } : query);
    },
    socketUrl(path) {
      const url = new URL(path, wsBase);
      if (token) url.searchParams.set("token", token);
      return url.href;
    },
    headers() {
      const headers = {};
      if (token) headers.Authorization = `token ${token}`;
      // Under jupyter_server, writes need the _xsrf cookie echoed (same origin only).
      if (new URL(apiBase).origin === window.location.origin) {
        const xsrf = cookie("_xsrf");
        if (xsrf) headers["X-XSRFToken"] = xsrf;
      }
      return headers;
    },
    async request(method, path, { signal } = {}) {
      let response;
      try {
        response = await fetch(client.url(path), {
          method,
          headers: client.headers(),
          cache: "no-store",
          signal,
        });
      } catch (err) {
        if (err && err.name === "AbortError") throw err;
        throw unreachable();
      }
      return parseBody(response.status, await response.text());
    },
    unreachable,
  };
  return client;
}

// ------------------------------------------------------------------------ state

const INITIAL_OPTIONS = {
  removeBg: true,
  model: "",
  fill: false,
  bgcolor: "#ffffff",
  cropFace: false,
  margin: "0.5",
  aspect: "1:1",
  size: "",
  allFaces: false,
  format: "png",
};

function initialState(initialOptions) {
  return {
    info: null,
    infoError: null,
    connecting: true,
    reload: 0,
    files: [], // {file, name, key}
    options: { ...INITIAL_OPTIONS, ...fromApiOptions(initialOptions || {}) },
    userOptions: fromApiOptions(initialOptions || {}), // what the props asked for wins
    dragging: false,
    phase: "idle", // idle | uploading | watching | ended
    message: "",
    uploadPct: 0,
    uploadText: "",
    jobId: null,
    job: null,
    items: [],
    itemsComplete: false,
    transport: null,
    statusText: "",
    cancelling: false,
  };
}

/** Options in the API's names (remove_bg, face_margin, …) or the component's own. */
function fromApiOptions(o) {
  const out = {};
  const set = (key, value) => {
    if (value !== undefined && value !== null) out[key] = value;
  };
  set("removeBg", o.remove_bg ?? o.removeBg);
  set("model", o.model);
  set("cropFace", o.crop_face ?? o.cropFace);
  set("allFaces", o.all_faces ?? o.allFaces);
  set("format", o.format);
  set("aspect", o.aspect);
  const margin = o.face_margin ?? o.margin;
  if (margin !== undefined && margin !== null) out.margin = String(margin);
  const size = o.output_size ?? o.size;
  if (size !== undefined) out.size = size ? String(size) : "";
  const colour = o.bgcolor;
  if (Array.isArray(colour)) {
    out.fill = true;
    out.bgcolor = rgbToHex(colour);
  } else if (typeof colour === "string" && /^#[0-9a-f]{6}$/i.test(colour)) {
    out.fill = true;
    out.bgcolor = colour;
  }
  if (typeof o.fill === "boolean") out.fill = o.fill;
  return out;
}

/** The server's default model when installed; otherwise an installed one, grabcut first. */
function preferredModel(info, wanted) {
  const byName = new Map(info.models.map((m) => [m.name, m]));
  if (wanted && byName.has(wanted)) return wanted;
  const fallback = byName.get(info.default_model);
  if (fallback && fallback.installed) return fallback.name;
  const grabcut = byName.get("grabcut");
  if (grabcut && grabcut.installed) return grabcut.name;
  const firstInstalled = info.models.find((m) => m.installed);
  return (firstInstalled || fallback || info.models[0] || { name: "" }).name;
}

function statusLine(job) {
  const progress = job.progress || {};
  const total = progress.total || 0;
  const processed = progress.processed || 0;
  const failed = progress.failed || 0;
  const failedText = failed ? `, ${failed} failed` : "";
  switch (job.status) {
    case "pending":
      return processed
        ? `Processed ${processed} of ${total}${failedText}; waiting for the worker…`
        : `${plural(total, "file")} queued; waiting for the worker…`;
    case "processing":
      return `Processed ${processed} of ${total}${failedText}…`;
    case "completed":
      return `Finished: ${processed - failed} of ${plural(total, "file")} processed${failedText}.`;
    case "cancelled":
      return `Cancelled after ${processed} of ${total}${failedText}.`;
    case "failed":
      return `Failed${job.error ? `: ${job.error}` : "."}${total ? ` (${failed} of ${total} failed)` : ""}`;
    default:
      return String(job.status || "");
  }
}

function isStale(current, job) {
  if (!current || current.id !== job.id) return false;
  if (ENDED.has(current.status)) return true; // nothing comes after a terminal state
  return Boolean(job.updated_at && current.updated_at && job.updated_at < current.updated_at);
}

function reducer(state, action) {
  switch (action.type) {
    case "connecting":
      return { ...state, connecting: true, infoError: null };
    case "info": {
      const info = action.info;
      const defaults = fromApiOptions(info.options || {});
      const options = { ...state.options, ...defaults, ...state.userOptions };
      const choices = info.choices || {};
      if (choices.format && !choices.format.includes(options.format)) options.format = choices.format[0];
      if (choices.aspect && !choices.aspect.includes(options.aspect)) options.aspect = choices.aspect[0];
      options.model = preferredModel(info, state.userOptions.model);
      return { ...state, info, options, connecting: false, infoError: null };
    }
    case "infoFailed":
      return { ...state, info: null, connecting: false, infoError: action.message };
    case "retry":
      return { ...state, reload: state.reload + 1 };
    case "addFiles": {
      const known = new Set(state.files.map((f) => f.key));
      const files = [...state.files];
      for (const { file, name } of action.entries) {
        const key = `${name}\u0000${file.size}\u0000${file.lastModified}`;
        if (known.has(key)) continue;
        known.add(key);
        files.push({ file, name, key });
      }
      return { ...state, files, message: "", dragging: false };
    }
    case "removeFile":
      return { ...state, files: state.files.filter((f) => f.key !== action.key) };
    case "clearFiles":
      return { ...state, files: [] };
    case "option": {
      const options = { ...state.options, [action.name]: action.value };
      return { ...state, options, userOptions: { ...state.userOptions, [action.name]: action.value } };
    }
    case "dragging":
      return state.dragging === action.value ? state : { ...state, dragging: action.value };
    case "message":
      return { ...state, message: action.message };
    case "uploadStart":
      return {
        ...state,
        phase: "uploading",
        message: "",
        uploadPct: 0,
        uploadText: "0%",
        jobId: null,
        job: null,
        items: [],
        itemsComplete: false,
        transport: null,
        cancelling: false,
        statusText: `Uploading ${plural(action.count, "file")}…`,
      };
    case "uploadProgress": {
      if (state.phase !== "uploading") return state;
      const pct = action.total ? (100 * action.loaded) / action.total : 0;
      return {
        ...state,
        uploadPct: pct,
        uploadText: `${Math.floor(pct)}%`,
        statusText: `Uploading… ${formatBytes(action.loaded)} of ${formatBytes(action.total)}`,
      };
    }
    case "uploadSent":
      if (state.phase !== "uploading") return state;
      return {
        ...state,
        uploadPct: 100,
        uploadText: "100%",
        statusText: "Upload complete; the server is unpacking the files…",
      };
    case "uploadFailed":
      return {
        ...state,
        phase: "idle",
        uploadPct: action.aborted ? 0 : state.uploadPct,
        uploadText: action.aborted ? "cancelled" : state.uploadText,
        statusText: action.message,
        message: action.aborted ? "" : action.message,
      };
    case "submitted": {
      const job = { ...action.job, id: action.job.id || action.job.job_id };
      return applyJob(
        { ...state, phase: "watching", jobId: job.id, uploadPct: 100, uploadText: "100%" },
        job,
      );
    }
    case "job":
      return applyJob(state, { ...action.job, id: action.job.id || action.job.job_id });
    case "items":
      if (action.jobId !== state.jobId || !Array.isArray(action.items)) return state;
      return { ...state, items: action.items, itemsComplete: true };
    case "transport":
      return state.transport === action.transport ? state : { ...state, transport: action.transport };
    case "pollError":
      return { ...state, statusText: `${action.message} Retrying…` };
    case "gone":
      if (action.jobId !== state.jobId) return state;
      return {
        ...state,
        phase: "ended",
        statusText: "The job is gone from the server (deleted or expired).",
      };
    case "cancelling":
      return { ...state, cancelling: action.value, statusText: action.value ? "Cancelling…" : state.statusText };
    default:
      throw new Error(`unknown action ${action.type}`);
  }
}

function applyJob(state, job) {
  if (job.id !== state.jobId || isStale(state.job, job)) return state;
  const next = { ...state, job, statusText: statusLine(job) };
  if (Array.isArray(job.items)) {
    next.items = job.items;
    next.itemsComplete = true;
  } else {
    next.itemsComplete = false; // a big job's WebSocket message: the counts only
  }
  if (ENDED.has(job.status)) next.phase = "ended";
  return next;
}

// ------------------------------------------------------------------------ dropped folders

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

function hasFiles(event) {
  return [...(event.dataTransfer?.types || [])].includes("Files");
}

// ------------------------------------------------------------------------ the component

/**
 * @param {object} props
 * @param {string} [props.apiUrl]   the API's base URL (default: REACT_APP_API_URL, else this page's origin)
 * @param {string} [props.wsUrl]    the WebSocket base (default: REACT_APP_WS_URL, else derived from apiUrl)
 * @param {string} [props.token]    the server's token, when it wants one
 * @param {object} [props.initialOptions]  e.g. {model: "grabcut", crop_face: true, format: "webp"}
 * @param {(job: object) => void} [props.onComplete]  called once when a job ends (any final state)
 * @param {(err: Error) => void} [props.onError]  called with every API error shown to the user
 * @param {"auto"|"poll"} [props.transport]  "poll" skips the WebSocket
 * @param {string} [props.className]
 */
export default function PhotoProcessor({
  apiUrl,
  wsUrl,
  token = "",
  initialOptions,
  onComplete,
  onError,
  transport = "auto",
  className = "",
}) {
  const [state, dispatch] = useReducer(reducer, initialOptions, initialState);
  const uid = useId();
  const id = (name) => `${uid}-${name}`;

  const env = useMemo(envDefaults, []);
  const apiBase = useMemo(
    () => normaliseBase(apiUrl || env.api, `${window.location.origin}/`),
    [apiUrl, env.api],
  );
  const wsBase = useMemo(() => wsBaseFrom(wsUrl || env.ws, apiBase), [wsUrl, env.ws, apiBase]);
  const client = useMemo(() => makeClient(apiBase, wsBase, token), [apiBase, wsBase, token]);

  // Callbacks in refs: a new arrow function on every render must not restart the effects.
  const onCompleteRef = useRef(onComplete);
  const onErrorRef = useRef(onError);
  useEffect(() => {
    onCompleteRef.current = onComplete;
    onErrorRef.current = onError;
  });
  const reportError = useCallback((err) => {
    if (onErrorRef.current) onErrorRef.current(err);
  }, []);

  const uploadRef = useRef(null); // the XMLHttpRequest while the body is being sent
  const dragDepth = useRef(0);

  // ---- processing-info: on mount and whenever the server or token changes.
  useEffect(() => {
    const controller = new AbortController();
    dispatch({ type: "connecting" });
    client
      .request("GET", "api/processing-info", { signal: controller.signal })
      .then((info) => {
        if (!info || !Array.isArray(info.models)) {
          throw new PhotoprocApiError(`${client.apiBase} does not look like a photoproc API.`, 0, "not_api");
        }
        dispatch({ type: "info", info });
      })
      .catch((err) => {
        if (controller.signal.aborted) return;
        dispatch({ type: "infoFailed", message: err.message });
        reportError(err);
      });
    return () => controller.abort();
  }, [client, state.reload, reportError]);

  // ---- live progress: one WebSocket per watched job, polling when it fails or drops.
  const watchId = state.phase === "watching" ? state.jobId : null;
  useEffect(() => {
    if (!watchId) return undefined;
    const controller = new AbortController();
    const signal = controller.signal;
    let socket = null;
    let pollTimer = 0;
    let itemsTimer = 0;
    let ended = false;

    const fetchStatus = () =>
      client.request("GET", `api/process-status/${encodeURIComponent(watchId)}`, { signal });

    const apply = (job) => {
      if (signal.aborted) return;
      if (ENDED.has(job.status)) ended = true;
      dispatch({ type: "job", job });
    };

    // WebSocket messages omit the items of very large jobs: fetch them now and then.
    const refreshItemsSoon = () => {
      if (itemsTimer || ended) return;
      itemsTimer = setTimeout(async () => {
        itemsTimer = 0;
        try {
          apply(await fetchStatus());
        } catch {
          /* the next progress message tries again */
        }
      }, ITEMS_REFRESH_MS);
    };

    const poll = (delay) => {
      dispatch({ type: "transport", transport: "polling" });
      let wait = POLL_MS;
      const tick = async () => {
        pollTimer = 0;
        try {
          const job = await fetchStatus();
          wait = POLL_MS;
          apply(job);
          if (ENDED.has(job.status)) return;
        } catch (err) {
          if (signal.aborted) return;
          if (err.status === 404) {
            dispatch({ type: "gone", jobId: watchId });
            reportError(err);
            return;
          }
          wait = Math.min(wait * 2, POLL_MAX_MS);
          dispatch({ type: "pollError", message: err.message });
        }
        if (!signal.aborted) pollTimer = setTimeout(tick, wait);
      };
      pollTimer = setTimeout(tick, delay);
    };

    if (transport === "poll" || typeof WebSocket === "undefined") {
      poll(0);
    } else {
      try {
        socket = new WebSocket(client.socketUrl(`ws/job/${encodeURIComponent(watchId)}`));
      } catch {
        socket = null;
        poll(0);
      }
    }
    if (socket) {
      let final = false;
      socket.onopen = () => dispatch({ type: "transport", transport: "websocket" });
      socket.onmessage = (event) => {
        if (typeof event.data !== "string" || event.data === "pong") return;
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        if (message.event === "final") final = true;
        apply(message);
        if (!Array.isArray(message.items) && !ENDED.has(message.status)) refreshItemsSoon();
      };
      socket.onclose = () => {
        socket = null;
        // Refused (proxy, auth, old server) or dropped before the end: poll instead.
        if (!final && !ended && !signal.aborted) poll(500);
      };
    }

    return () => {
      controller.abort();
      clearTimeout(pollTimer);
      clearTimeout(itemsTimer);
      if (socket) {
        socket.onclose = null;
        socket.onmessage = null;
        socket.onopen = null;
        if (socket.readyState <= WebSocket.OPEN) socket.close(1000, "done");
        socket = null;
      }
    };
  }, [watchId, client, transport, reportError]);

  // ---- a job that ended without its item list (big jobs): fetch it once.
  const endedId =
    state.phase === "ended" && state.job && ENDED.has(state.job.status) ? state.job.id : null;
  const needItems = Boolean(endedId) && !state.itemsComplete;
  useEffect(() => {
    if (!needItems) return undefined;
    const controller = new AbortController();
    client
      .request("GET", `api/process-status/${encodeURIComponent(endedId)}`, { signal: controller.signal })
      .then((full) => dispatch({ type: "items", jobId: endedId, items: full.items }))
      .catch(() => {
        /* the counts are already shown */
      });
    return () => controller.abort();
  }, [needItems, endedId, client]);

  // ---- onComplete once per job.
  const completedFor = useRef(null);
  useEffect(() => {
    if (!endedId || !state.job || completedFor.current === endedId) return;
    completedFor.current = endedId;
    if (onCompleteRef.current) onCompleteRef.current({ ...state.job, items: state.items });
  }, [endedId, state.job, state.items]);

  // ---- an upload still running when the component goes away is aborted.
  useEffect(
    () => () => {
      const xhr = uploadRef.current;
      uploadRef.current = null;
      if (xhr) {
        xhr.onabort = null;
        xhr.onload = null;
        xhr.onerror = null;
        xhr.abort();
      }
    },
    [],
  );

  // ------------------------------------------------------------------ actions

  const busy = state.phase === "uploading" || state.phase === "watching";
  const { options, info } = state;

  const setOption = (name) => (event) => {
    const target = event.target;
    dispatch({ type: "option", name, value: target.type === "checkbox" ? target.checked : target.value });
  };

  const addFiles = (entries) => dispatch({ type: "addFiles", entries });

  function validate() {
    if (!info) return "Connect to a photoproc server first.";
    if (!state.files.length) return "Choose at least one photo or ZIP archive.";
    if (!options.removeBg && !options.cropFace) {
      return "Choose what to do: remove the background, crop to the face, or both.";
    }
    if (options.cropFace) {
      const margin = Number(options.margin);
      if (String(options.margin).trim() === "" || !(margin >= 0 && margin <= 5)) {
        return "The face margin must be a number between 0 and 5.";
      }
      const size = String(options.size).trim();
      const pixels = Number(size);
      if (size && !(Number.isInteger(pixels) && pixels >= 16 && pixels <= 8192)) {
        return "The longest side must be a whole number between 16 and 8192.";
      }
    }
    const limits = info.limits || {};
    const total = state.files.reduce((sum, f) => sum + f.file.size, 0);
    if (limits.max_upload_bytes && total > limits.max_upload_bytes) {
      return (
        `The files add up to ${formatBytes(total)}; the server accepts ` +
        `${formatBytes(limits.max_upload_bytes)} per upload. Send them in smaller batches.`
      );
    }
    if (limits.max_upload_files && state.files.length > limits.max_upload_files) {
      return (
        `The server accepts ${limits.max_upload_files} files per upload; ` +
        `${state.files.length} are chosen. Put them in a ZIP or send smaller batches.`
      );
    }
    return null;
  }

  function formFields() {
    const fields = { remove_bg: options.removeBg, crop_face: options.cropFace, format: options.format };
    if (options.model) fields.model = options.model;
    if (options.removeBg && options.fill) fields.bgcolor = options.bgcolor;
    if (options.cropFace) {
      fields.face_margin = options.margin;
      fields.aspect = options.aspect;
      fields.all_faces = options.allFaces;
      if (String(options.size).trim()) fields.output_size = String(options.size).trim();
    }
    return fields;
  }

  function start(event) {
    event.preventDefault();
    if (busy) return;
    const problem = validate();
    if (problem) {
      dispatch({ type: "message", message: problem });
      return;
    }
    const form = new FormData();
    for (const [key, value] of Object.entries(formFields())) form.append(key, String(value));
    for (const entry of state.files) form.append("files", entry.file, entry.name);

    dispatch({ type: "uploadStart", count: state.files.length });
    // XMLHttpRequest, not fetch(): fetch cannot report upload progress.
    const xhr = new XMLHttpRequest();
    uploadRef.current = xhr;
    const done = () => {
      if (uploadRef.current === xhr) uploadRef.current = null;
    };
    const fail = (err, aborted = false) => {
      done();
      dispatch({ type: "uploadFailed", message: err.message, aborted });
      if (!aborted) reportError(err);
    };
    xhr.open("POST", client.url("api/upload-and-process"));
    for (const [key, value] of Object.entries(client.headers())) xhr.setRequestHeader(key, value);
    xhr.upload.onprogress = (e) => dispatch({ type: "uploadProgress", loaded: e.loaded, total: e.total });
    xhr.upload.onload = () => dispatch({ type: "uploadSent" });
    xhr.onload = () => {
      let job;
      try {
        job = parseBody(xhr.status, xhr.responseText);
      } catch (err) {
        fail(err);
        return;
      }
      done();
      dispatch({ type: "submitted", job });
    };
    xhr.onerror = () => {
      const err = client.unreachable();
      err.message =
        "The upload failed: the connection was closed. The server may have refused a body " +
        "over its size limit, stopped, or not allowed this page's origin.";
      fail(err);
    };
    xhr.onabort = () => fail(new PhotoprocApiError("Upload cancelled.", 0, "aborted"), true);
    xhr.send(form);
  }

  async function cancel() {
    if (uploadRef.current) {
      uploadRef.current.abort();
      return;
    }
    const jobId = state.jobId;
    if (!jobId || state.cancelling || state.phase !== "watching") return;
    dispatch({ type: "cancelling", value: true });
    try {
      const job = await client.request("POST", `api/cancel-job/${encodeURIComponent(jobId)}`);
      dispatch({ type: "job", job });
    } catch (err) {
      dispatch({ type: "message", message: `Could not cancel: ${err.message}` });
      reportError(err);
    } finally {
      dispatch({ type: "cancelling", value: false });
    }
  }

  // Drag and drop: the whole component is the target, so a near miss does not navigate away.
  const dropHandlers = {
    onDragEnter(event) {
      if (!hasFiles(event)) return;
      dragDepth.current += 1;
      dispatch({ type: "dragging", value: true });
    },
    onDragLeave(event) {
      if (!hasFiles(event)) return;
      dragDepth.current = Math.max(0, dragDepth.current - 1);
      if (!dragDepth.current) dispatch({ type: "dragging", value: false });
    },
    onDragOver(event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = busy ? "none" : "copy";
    },
    onDrop(event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth.current = 0;
      dispatch({ type: "dragging", value: false });
      if (busy) return;
      droppedFiles(event.dataTransfer).then(addFiles, (err) =>
        dispatch({ type: "message", message: `Could not read the dropped files: ${err.message || err}` }),
      );
    },
  };

  // ------------------------------------------------------------------ rendering

  const models = info ? info.models : [];
  const model = models.find((m) => m.name === options.model);
  const choices = (info && info.choices) || {};
  const limits = (info && info.limits) || {};
  const totalBytes = state.files.reduce((sum, f) => sum + f.file.size, 0);
  const zips = state.files.filter((f) => isZip(f.file)).length;
  const job = state.job;
  const progress = (job && job.progress) || {};
  const jobPct = Math.max(0, Math.min(100, Number(progress.percentage) || 0));
  let status = job ? job.status : state.phase;
  if (state.phase === "uploading") status = "uploading";
  else if (state.phase === "ended" && job && !ENDED.has(job.status)) status = "gone";
  const thumbs = [];
  for (const item of state.items) {
    if (item.status !== "done" || !(item.outputs > 0)) continue;
    for (let k = 0; k < item.outputs; k += 1) {
      const label = item.outputs > 1 ? `${item.name} (${k + 1} of ${item.outputs})` : item.name;
      const query = { format: "individual", item: item.index };
      if (k) query.output = k;
      thumbs.push({
        key: `${item.index}:${k}`,
        index: item.index,
        label,
        url: client.tokenUrl(`api/download-results/${encodeURIComponent(state.jobId)}`, query),
      });
    }
  }
  const succeeded = (progress.processed || 0) - (progress.failed || 0);
  const showResults = thumbs.length > 0 || (state.phase === "ended" && succeeded > 0);
  const zipUrl =
    state.phase === "ended" && job && succeeded > 0
      ? client.tokenUrl(`api/download-results/${encodeURIComponent(job.id)}`, { format: "zip" })
      : null;

  let modelHelp = "";
  if (model) {
    const bits = [model.description];
    if (model.installed) bits.push(model.offline ? "Installed; needs no download." : "Installed.");
    else {
      const size = model.size_bytes ? ` (${formatBytes(model.size_bytes)})` : "";
      bits.push(
        `Not installed: the server downloads it${size} on first use, ` +
          `or run “photoproc models pull ${model.name}” there.`,
      );
    }
    if (model.licence) bits.push(`Licence: ${model.licence}.`);
    modelHelp = bits.join(" ");
  }
  const installed = models.filter((m) => m.installed);
  const missing = models.filter((m) => !m.installed);
  const limitsHint = ["JPEG, PNG, WebP, BMP, TIFF, GIF, HEIC and ZIP."];
  if (limits.max_upload_bytes) {
    limitsHint.push(
      `Up to ${formatBytes(limits.max_upload_bytes)}` +
        (limits.max_upload_files ? ` and ${limits.max_upload_files.toLocaleString("en")} files` : "") +
        " per upload.",
    );
  }

  return (
    <div
      className={`photoproc${state.dragging ? " pp-dragging" : ""}${className ? ` ${className}` : ""}`}
      data-status={status}
      data-transport={state.transport || undefined}
      {...dropHandlers}
    >
      {state.infoError && (
        <div className="pp-banner" role="alert">
          <span>{state.infoError}</span>
          <button type="button" className="pp-button pp-secondary pp-small" onClick={() => dispatch({ type: "retry" })}>
            Retry
          </button>
        </div>
      )}

      <form className="pp-form" onSubmit={start} noValidate aria-busy={busy}>
        <section className="pp-card" aria-labelledby={id("files")}>
          <h2 id={id("files")}>Photos</h2>
          <div className={`pp-dropzone${busy ? " pp-locked" : ""}`} data-testid="dropzone">
            <p className="pp-drop-title">Drop images, folders or ZIP archives here</p>
            <p className="pp-drop-or">or</p>
            <input
              id={id("file-input")}
              className="pp-visually-hidden"
              type="file"
              multiple
              accept={ACCEPT}
              disabled={busy}
              aria-describedby={id("limits")}
              onChange={(event) => {
                addFiles([...event.target.files].map((file) => ({ file, name: file.name })));
                event.target.value = ""; // choosing the same file again fires "change" again
              }}
            />
            <label htmlFor={id("file-input")} className="pp-button pp-secondary">
              Choose files…
            </label>
            <p className="pp-hint" id={id("limits")}>
              {limitsHint.join(" ")}
            </p>
          </div>
          {state.files.length > 0 && (
            <div className="pp-selection">
              <div className="pp-row">
                <p className="pp-selection-summary">
                  {`${plural(state.files.length, "file")} chosen, ${formatBytes(totalBytes)}`}
                  {zips ? ` (${plural(zips, "ZIP archive")})` : ""}
                </p>
                <button
                  type="button"
                  className="pp-button pp-ghost pp-small"
                  disabled={busy}
                  onClick={() => dispatch({ type: "clearFiles" })}
                >
                  Clear all
                </button>
              </div>
              <ul className="pp-file-list" aria-label="Chosen files">
                {state.files.map((entry) => (
                  <li className="pp-file-row" key={entry.key}>
                    <span className="pp-file-name" title={entry.name}>
                      {entry.name}
                    </span>
                    {isZip(entry.file) && <span className="pp-badge">ZIP</span>}
                    <span className="pp-file-size">{formatBytes(entry.file.size)}</span>
                    <button
                      type="button"
                      className="pp-icon-button"
                      aria-label={`Remove ${entry.name}`}
                      title="Remove"
                      disabled={busy}
                      onClick={() => dispatch({ type: "removeFile", key: entry.key })}
                    >
                      ×
                    </button>
                  </li>
                ))}
              </ul>
            </div>
          )}
        </section>

        <section className="pp-card" aria-labelledby={id("options")}>
          <h2 id={id("options")}>Options</h2>
          <div className="pp-options">
            <fieldset className="pp-group" disabled={!options.removeBg}>
              <legend>
                <label className="pp-check">
                  <input type="checkbox" checked={options.removeBg} onChange={setOption("removeBg")} />
                  <span>Remove background</span>
                </label>
              </legend>
              <div className="pp-field">
                <label htmlFor={id("model")}>Model</label>
                <select
                  id={id("model")}
                  value={options.model}
                  onChange={setOption("model")}
                  aria-describedby={id("model-help")}
                >
                  {!info && <option value="">{state.connecting ? "Loading models…" : "No server"}</option>}
                  {installed.length > 0 && (
                    <optgroup label="Installed">
                      {installed.map((m) => (
                        <option key={m.name} value={m.name}>
                          {m.offline ? `${m.name} (offline)` : m.name}
                        </option>
                      ))}
                    </optgroup>
                  )}
                  {missing.length > 0 && (
                    <optgroup label="Not installed (downloaded on first use)">
                      {missing.map((m) => (
                        <option key={m.name} value={m.name}>
                          {`${m.name} — not installed`}
                        </option>
                      ))}
                    </optgroup>
                  )}
                </select>
                <p className="pp-hint" id={id("model-help")}>
                  {modelHelp}
                </p>
              </div>
              <div className="pp-field">
                <label className="pp-check">
                  <input type="checkbox" checked={options.fill} onChange={setOption("fill")} />
                  <span>Fill the background with a colour</span>
                </label>
                <div className="pp-color-row">
                  <label htmlFor={id("bgcolor")}>Background colour</label>
                  <input
                    id={id("bgcolor")}
                    type="color"
                    value={options.bgcolor}
                    disabled={!options.fill}
                    onChange={setOption("bgcolor")}
                  />
                </div>
              </div>
            </fieldset>

            <fieldset className="pp-group" disabled={!options.cropFace}>
              <legend>
                <label className="pp-check">
                  <input type="checkbox" checked={options.cropFace} onChange={setOption("cropFace")} />
                  <span>Crop to the face</span>
                </label>
              </legend>
              <div className="pp-field-pair">
                <div className="pp-field">
                  <label htmlFor={id("margin")}>Margin (× face size)</label>
                  <input
                    id={id("margin")}
                    type="number"
                    min="0"
                    max="5"
                    step="0.05"
                    inputMode="decimal"
                    value={options.margin}
                    onChange={setOption("margin")}
                  />
                </div>
                <div className="pp-field">
                  <label htmlFor={id("aspect")}>Aspect ratio</label>
                  <select id={id("aspect")} value={options.aspect} onChange={setOption("aspect")}>
                    {(choices.aspect || [options.aspect]).map((value) => (
                      <option key={value} value={value}>
                        {ASPECT_LABEL[value] || value}
                      </option>
                    ))}
                  </select>
                </div>
              </div>
              <div className="pp-field">
                <label htmlFor={id("size")}>Longest side (px, optional)</label>
                <input
                  id={id("size")}
                  type="number"
                  min="16"
                  max="8192"
                  step="1"
                  inputMode="numeric"
                  placeholder="keep the crop's size"
                  value={options.size}
                  onChange={setOption("size")}
                />
              </div>
              <label className="pp-check">
                <input type="checkbox" checked={options.allFaces} onChange={setOption("allFaces")} />
                <span>One crop per face</span>
              </label>
            </fieldset>

            <fieldset className="pp-group">
              <legend>Output</legend>
              <div className="pp-field">
                <label htmlFor={id("format")}>Format</label>
                <select
                  id={id("format")}
                  value={options.format}
                  onChange={setOption("format")}
                  aria-describedby={id("format-help")}
                >
                  {(choices.format || [options.format]).map((value) => (
                    <option key={value} value={value}>
                      {FORMAT_LABEL[value] || value}
                    </option>
                  ))}
                </select>
                <p className="pp-hint" id={id("format-help")}>
                  {FORMAT_HELP[options.format] || ""}
                </p>
              </div>
            </fieldset>
          </div>

          <div className="pp-actions">
            <button type="submit" className="pp-button pp-primary" disabled={busy}>
              Process photos
            </button>
            <button type="button" className="pp-button pp-danger" disabled={!busy} onClick={cancel}>
              Cancel
            </button>
            <p className="pp-message" role="alert">
              {state.message}
            </p>
          </div>
        </section>
      </form>

      {state.phase !== "idle" || state.statusText ? (
        <section className="pp-card" aria-labelledby={id("progress")} data-testid="progress">
          <h2 id={id("progress")}>Progress</h2>
          <div className="pp-meter">
            <div className="pp-meter-label">
              <label htmlFor={id("upload-progress")}>Upload</label>
              <span data-testid="upload-text">{state.uploadText || "0%"}</span>
            </div>
            <progress id={id("upload-progress")} max="100" value={state.uploadPct} data-testid="upload-progress" />
          </div>
          <div className="pp-meter">
            <div className="pp-meter-label">
              <label htmlFor={id("job-progress")}>Processing</label>
              <span data-testid="job-text">{job ? `${Math.floor(jobPct)}%` : "waiting"}</span>
            </div>
            <progress id={id("job-progress")} max="100" value={jobPct} data-testid="job-progress" />
          </div>
          <p className="pp-status" role="status" data-testid="job-status">
            {state.statusText}
          </p>
          {state.items.length > 0 && (
            <ul className="pp-file-list pp-items" aria-label="Status of each file">
              {state.items.map((item) => (
                <li className={`pp-file-row pp-item pp-status-${item.status}`} key={item.index} data-index={item.index}>
                  <span className="pp-file-name" title={item.name}>
                    {item.name}
                  </span>
                  <span className={`pp-status-badge pp-${item.status}`}>{STATUS_LABEL[item.status] || item.status}</span>
                  {item.error && <p className="pp-item-error">{item.error}</p>}
                  {(item.warnings || []).map((warning) => (
                    <p className="pp-item-warning" key={warning}>
                      {warning}
                    </p>
                  ))}
                </li>
              ))}
            </ul>
          )}
        </section>
      ) : null}

      {showResults && (
        <section className="pp-card" aria-labelledby={id("results")}>
          <div className="pp-row">
            <h2 id={id("results")}>
              Results <span className="pp-count">({thumbs.length})</span>
            </h2>
            {zipUrl && (
              <a className="pp-button pp-primary" href={zipUrl} download>
                Download all (ZIP)
              </a>
            )}
          </div>
          <ul className="pp-thumbs" aria-label="Result images">
            {thumbs.map((thumb) => (
              <Thumb key={thumb.key} thumb={thumb} />
            ))}
          </ul>
        </section>
      )}
    </div>
  );
}

function Thumb({ thumb }) {
  const [broken, setBroken] = useState(false);
  return (
    <li className="pp-thumb" data-index={thumb.index}>
      <div className="pp-checker">
        {broken ? (
          <span className="pp-thumb-missing">Preview unavailable</span>
        ) : (
          <img src={thumb.url} alt={`Result for ${thumb.label}`} loading="lazy" decoding="async" onError={() => setBroken(true)} />
        )}
      </div>
      <div className="pp-thumb-caption">
        <span className="pp-thumb-name" title={thumb.label}>
          {thumb.label}
        </span>
        <a
          className="pp-button pp-small pp-secondary"
          href={thumb.url}
          download
          aria-label={`Download the result for ${thumb.label}`}
          title="Download"
        >
          ↓
        </a>
      </div>
    </li>
  );
}
