import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The server (unidesk-server) serves the built bundle from the Python package dir.
export default defineConfig({
  base: "/",
  plugins: [react()],
  build: {
    outDir: "../unidesk/web_dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 800,
  },
  server: {
    proxy: {
      "/api": { target: process.env.UNIDESK_DEV_SERVER ?? "http://127.0.0.1:8000", changeOrigin: false },
      "/health": { target: process.env.UNIDESK_DEV_SERVER ?? "http://127.0.0.1:8000" },
    },
  },
  test: {
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    environment: "node",
  },
});
