// Builds the console into ./static with fixed file names (no content hashes): the output is
// committed, and a rebuild from the same lockfile gives the same files. `serve` sends them with
// Cache-Control: no-cache and ETags, so browsers revalidate instead of keeping a stale copy.
import { defineConfig } from "vite";

export default defineConfig({
  root: ".",
  base: "/",
  build: {
    outDir: "static",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: false,
    sourcemap: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 600,
    rolldownOptions: {
      output: {
        entryFileNames: "assets/console.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: (asset) =>
          (asset.names || []).some((n) => n.endsWith(".css")) ? "assets/console.css" : "assets/[name][extname]",
      },
    },
  },
});
