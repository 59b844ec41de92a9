/* The test app: <PhotoProcessor /> under StrictMode, configured from the page's query:
 *   ?api=URL&ws=URL&token=T&transport=poll&strict=0
 * It records what the browser tests check in window.__photoproc. */
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import PhotoProcessor from "../PhotoProcessor.jsx";

const params = new URLSearchParams(window.location.search);
const record = { mountEffects: 0, completed: [], errors: [] };
window.__photoproc = record;

function Harness() {
  const [mounted, setMounted] = useState(true);
  // Runs twice under StrictMode in development: the tests check that it did.
  useEffect(() => {
    record.mountEffects += 1;
  }, []);
  return (
    <main>
      <h1>PhotoProcessor test app</h1>
      <button type="button" onClick={() => setMounted((m) => !m)}>
        {mounted ? "Unmount the component" : "Mount the component"}
      </button>
      {mounted && (
        <PhotoProcessor
          apiUrl={params.get("api") || undefined}
          wsUrl={params.get("ws") || undefined}
          token={params.get("token") || ""}
          transport={params.get("transport") || "auto"}
          initialOptions={{ model: params.get("model") || "grabcut" }}
          onComplete={(job) => record.completed.push(job)}
          onError={(err) => record.errors.push(err.message)}
        />
      )}
    </main>
  );
}

const tree = params.get("strict") === "0" ? <Harness /> : <StrictMode><Harness /></StrictMode>;
createRoot(document.getElementById("root")).render(tree);
