// A worker's host-wide claim on its session uid range: an overlap with a live worker's claim is refused, naming that
// worker and what to change; a claim whose worker is gone is stale and taken over; the claim goes with its scope.
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, Scope } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { claimUidRange } from "../../src/worker/uid-claim.ts"

const dir = mkdtempSync(join(tmpdir(), "sagews-claims-"))
// a live process that looks like a worker: its command line names worker/main.ts
const other = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", "worker/main.ts"], { stdio: "ignore" })

afterAll(() => {
  other.kill("SIGKILL")
  rmSync(dir, { recursive: true, force: true })
})

const claim = async (first: number, last: number) => {
  const scope = await Effect.runPromise(Scope.make())
  const exit = await Effect.runPromiseExit(Scope.provide(scope)(claimUidRange({ first, last }, "/data/mine", dir)))
  return { exit, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

describe("the session uid range claim", () => {
  it("refuses a range that overlaps a live worker's, takes over a dead one's, and lets go when its scope closes", async () => {
    writeFileSync(join(dir, "uids-5000-5999"), `${other.pid} /data/theirs\n`)
    const refused = await claim(5500, 6499)
    const message = Exit.isFailure(refused.exit) ? Cause.squash(refused.exit.cause) : undefined
    expect(message).toBeInstanceOf(Error)
    expect((message as Error).message).toBe(
      `session uids 5500-6499 overlap 5000-5999, held by the live worker pid ${other.pid} of /data/theirs: give one of the two trees another sessions.uidBase (config, or SAGEWS_SESSIONS_UID_BASE)`,
    )
    await refused.close()
    const beside = await claim(6000, 6999)
    expect(Exit.isSuccess(beside.exit)).toBe(true)
    expect(readFileSync(join(dir, "uids-6000-6999"), "utf8")).toBe(`${process.pid} /data/mine\n`)
    await beside.close()
    expect(existsSync(join(dir, "uids-6000-6999"))).toBe(false)
    // its worker died without letting go: the claim is stale
    writeFileSync(join(dir, "uids-7000-7999"), "999999999 /data/gone\n")
    const stale = await claim(7000, 7999)
    expect(Exit.isSuccess(stale.exit)).toBe(true)
    await stale.close()
    expect(existsSync(join(dir, "uids-5000-5999"))).toBe(true)
  })
})
