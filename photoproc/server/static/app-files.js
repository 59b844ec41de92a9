/* photoproc upload page, part of the ordered scripts listed in app-core.js. */
"use strict";

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
