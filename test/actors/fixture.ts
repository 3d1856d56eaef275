// Shared pieces of the actor tests: a temp data dir for the test's scope, a free port, and the living
// processes that mention a word (the data dir) in their command line.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { livingProcesses } from "../../actors/procstat.ts"
import { freePort as freePortAsync } from "../ports.ts"

/** A fresh directory, removed when the test's scope closes. */
export const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), prefix))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true })),
  )

export const freePort = Effect.promise(freePortAsync)

/** Living (non-zombie) processes whose command line mentions every one of `words`. */
export const living = (...words: ReadonlyArray<string>): ReadonlyArray<number> =>
  livingProcesses((p) => words.every((w) => p.cmdline.includes(w))).map((p) => p.pid)
