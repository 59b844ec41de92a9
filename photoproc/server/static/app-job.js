/* photoproc upload page, part of the ordered scripts listed in app-core.js. */
"use strict";

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
