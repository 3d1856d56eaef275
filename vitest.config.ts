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
    // what a test waits for (a page to show a state, a row to appear) gets 15 s, not vitest's 1 s: on a loaded
    // 2-core machine a browser round trip through haproxy can take longer than a second (a wait, not a timing goal)
    expect: { poll: { timeout: 15_000 } },
  },
})
