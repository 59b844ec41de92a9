/* photoproc upload page, part of the ordered scripts listed in app-core.js. */
"use strict";

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
