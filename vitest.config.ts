// Test runner settings: integration tests start real servers (PostgreSQL, Sage, Chromium, CPU-hogging hostile
// cells), so they get generous timeouts and run one file at a time: on a 2-core machine two such files at once
// starve each other's processes (~7 min in all, against ~4 min with two workers and the odd starved test).
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 1,
  },
})
