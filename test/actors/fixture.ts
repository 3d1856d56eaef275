// Shared pieces of the actor tests: a temp data dir for the test's scope, a free port, and the living
// processes that mention a word (the data dir) in their command line.
import { readdirSync, readFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { freePort as freePortAsync } from "../ports.ts"

/** A fresh directory, removed when the test's scope closes. */
export const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), prefix))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true })),
  )

export const freePort = Effect.promise(freePortAsync)

/** Living (non-zombie) processes whose command line mentions `word`. */
export const living = (word: string): ReadonlyArray<number> =>
  readdirSync("/proc").filter((name) => /^\d+$/.test(name)).flatMap((name) => {
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8")
      const state = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]?.[0]
      return state !== "Z" && cmd.includes(word) ? [Number(name)] : []
    } catch {
      return []
    }
  })
