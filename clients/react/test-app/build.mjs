// Bundles the test app into test-app/dist/ (index.html, main.js, main.css) with esbuild.
// React's development build, so that StrictMode really mounts, unmounts and mounts again.
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2] || join(here, "dist");

await mkdir(outdir, { recursive: true });
await build({
  entryPoints: [join(here, "main.jsx")],
  bundle: true,
  outdir,
  format: "iife",
  target: ["chrome100", "firefox100", "safari15"],
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"development"' },
  logLevel: "warning",
});
await copyFile(join(here, "index.html"), join(outdir, "index.html"));
console.log(`test app built in ${outdir}`);
