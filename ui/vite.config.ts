/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { svelteTesting } from "@testing-library/svelte/vite";

// Tauri serves the built files from its own origin root, so the defaults (base "/") are right.
export default defineConfig({
  plugins: [svelte(), svelteTesting()],
  clearScreen: false,
  envPrefix: ["VITE_", "TAURI_"],
  server: { port: 5173, strictPort: true },
  build: { outDir: "dist", target: "es2021", sourcemap: false },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/tests/setup.ts"],
    include: ["src/**/*.test.ts"],
  },
});
