import { defineConfig } from "vitest/config";

// The build lands inside the Python package, so `pip install mqferry` serves it under /dashboard.
export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../core/mqferry/console_dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2020",
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
