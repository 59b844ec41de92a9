/* photoproc upload page, part of the ordered scripts listed in app-core.js. */
"use strict";

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
