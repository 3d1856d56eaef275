// `sagews doctor` through the real CLI: on this host (root, cgroups, namespaces, seccomp) a fresh data directory
// passes; a secret made readable by others and a pg_hba.conf that trusts are each a FAIL that names them (exit 1).
import { execFile } from "node:child_process"
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { SAGEWS } from "./stack.ts"

const doctor = (dataDir: string): Promise<{ code: number; stdout: string }> =>
  new Promise((resolve) => {
    execFile(SAGEWS, ["doctor", "--data", dataDir], { timeout: 60_000 }, (error, stdout) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout })
    })
  })

describe("sagews doctor", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "sagews-doctor-"))
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

  it("passes on this host with a fresh data directory, and names each thing it checked", async () => {
    mkdirSync(join(dataDir, "secret"), { mode: 0o700 })
    writeFileSync(join(dataDir, "secret", "worker.key"), "k", { mode: 0o600 })
    const { code, stdout } = await doctor(dataDir)
    for (const what of ["root", "cgroups", "namespaces", "seccomp", "fs.protected_symlinks", "world-writable", "secrets"]) expect(stdout).toMatch(new RegExp(`^(ok|warn)\\s+${what.replace(".", "\\.")}\\s`, "m"))
    expect(stdout).not.toMatch(/^FAIL/m)
    expect(code).toBe(0)
  })

  it("fails on a secret others can read and on a trusting pg_hba.conf, naming both", async () => {
    chmodSync(join(dataDir, "secret", "worker.key"), 0o644)
    mkdirSync(join(dataDir, "pg"))
    writeFileSync(join(dataDir, "pg", "pg_hba.conf"), "local all all trust\n")
    const { code, stdout } = await doctor(dataDir)
    expect(stdout).toMatch(/^FAIL\s+secrets\s+readable by others: .*worker\.key/m)
    expect(stdout).toMatch(/^FAIL\s+pg_hba\.conf\s+trust lines: local all all trust/m)
    expect(code).toBe(1)
  })
})
