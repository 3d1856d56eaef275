// Git bundles of a workspace: a full one (every commit of the branch) or an increment (the commits since the last
// one), and restoring a repository by fetching a chain of them in order: a full bundle, then its increments.
import { randomUUID } from "node:crypto"
import { rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import { WorkspaceError } from "./errors.ts"
import { BRANCH } from "./limits.ts"
import type { Repo } from "./repo.ts"

/** Every commit up to the branch's head, or (with `since`) only those after `since`, which a restore must have. */
export const createBundle = (repo: Repo, since?: string): Effect.Effect<Buffer, WorkspaceError> =>
  repo.run(["bundle", "create", "--quiet", "-", ...(since === undefined ? [] : [`^${since}`]), BRANCH])

const fsError = (workspace: string, what: string) => (e: unknown) =>
  new WorkspaceError({ reason: "Filesystem", workspace, message: `could not ${what}`, detail: e instanceof Error ? e.message : String(e) })

/**
 * Fetches each bundle into `repo` in order, moving its branch to each bundle's head (a full bundle first, then
 * increments whose prerequisites the earlier ones brought). The files live in `scratch` only while fetched.
 */
export const applyBundles = (repo: Repo, scratch: string, bundles: ReadonlyArray<{ readonly bundle: Uint8Array }>): Effect.Effect<void, WorkspaceError> =>
  Effect.forEach(bundles, ({ bundle }) => {
    const file = join(scratch, `${randomUUID()}.bundle`)
    return Effect.tryPromise({ try: () => writeFile(file, bundle), catch: fsError(repo.workspace, `write a bundle to ${file}`) }).pipe(
      Effect.andThen(repo.run(["fetch", "--quiet", "--no-write-fetch-head", file, `+${BRANCH}:${BRANCH}`])),
      Effect.ensuring(Effect.promise(() => rm(file, { force: true }))),
    )
  }, { discard: true })
