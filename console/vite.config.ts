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
  // `npm run dev` serves the sources and forwards the API to a local instance (MQFERRY_API_URL).
  server: { proxy: { "/api": process.env.MQFERRY_API_URL ?? "http://127.0.0.1:18083" } },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
