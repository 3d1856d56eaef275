// The Workspaces service: create a workspace, save a file (every save is a commit, stored in PostgreSQL before it
// counts), read a file at any version, list history, and restore from PostgreSQL alone. The local repositories under
// `root` are caches of PostgreSQL: before each operation the local head is brought to the stored one, fetching the
// bundles it lacks, so any host (or one whose directory was lost) serves every version. One process per `root`.
import { randomUUID } from "node:crypto"
import { existsSync } from "node:fs"
import { mkdir, rename, rm } from "node:fs/promises"
import { join } from "node:path"
import { Clock, Context, Effect, Layer } from "effect"
import { applyBundles, createBundle } from "./bundle.ts"
import { Conflict, WorkspaceError } from "./errors.ts"
import { removeLeftovers } from "./leftovers.ts"
import { keyedLock } from "./keyed-lock.ts"
import { COMPACT_EVERY } from "./limits.ts"
import { repo, type Author, type Entry, type Repo } from "./repo.ts"
import { WorkspaceStore, type HeadState } from "./store.ts"
import { checkId, checkPath, checkSize, checkVersion } from "./validate.ts"

/** Times a save that names no base version tries again after another host saved in between. */
const UNBASED_RETRIES = 3

export interface WriteInput {
  readonly id: string
  readonly path: string
  readonly content: Uint8Array | string
  readonly message: string
  readonly author: Author
  /** the version the edit started from: when it is not the latest, the write fails with Conflict */
  readonly base?: string | undefined
  /**
   * When the file at the latest version is `content` already, commit nothing and return the version that last changed
   * it: a commit that changes nothing would not be in the file's history.
   */
  readonly skipUnchanged?: boolean | undefined
}

/** A file to drop from the latest version, as a commit of its own. */
export interface RemoveInput {
  readonly id: string
  readonly path: string
  readonly message: string
  readonly author: Author
  /** the version the edit started from: when it is not the latest, the remove fails with Conflict */
  readonly base?: string | undefined
}

/** The files of a workspace at one version. */
export interface Listing {
  readonly version: string
  readonly files: ReadonlyArray<{ readonly path: string; readonly size: number }>
}

export interface WorkspacesShape {
  /** A workspace owned by `owner` (an account id), with one empty commit; returns that version. */
  readonly create: (input: { readonly id: string; readonly owner: string; readonly author: Author }) => Effect.Effect<string, WorkspaceError>
  /** Writes and commits one file; returns the new version once PostgreSQL has committed it. */
  readonly write: (input: WriteInput) => Effect.Effect<string, WorkspaceError | Conflict>
  /** The file at `version`, or at the latest version. */
  readonly read: (id: string, path: string, version?: string) => Effect.Effect<Uint8Array, WorkspaceError>
  /** The latest version and its owner. */
  readonly head: (id: string) => Effect.Effect<HeadState, WorkspaceError>
  /** Commits of the workspace, or of one file, newest first. */
  readonly history: (id: string, path?: string) => Effect.Effect<ReadonlyArray<Entry>, WorkspaceError>
  /** Drops the local repository and builds it again from PostgreSQL alone; returns its directory. */
  readonly restore: (id: string) => Effect.Effect<string, WorkspaceError>
  /** where the local repository of `id` lives (bare) */
  readonly gitDir: (id: string) => string
  /** Every file of the latest version, with its size, and that version. */
  readonly files: (id: string) => Effect.Effect<Listing, WorkspaceError>
  /** The files `paths` at `version`, read at once (a path with no file there is left out). */
  readonly readMany: (id: string, version: string, paths: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Uint8Array>, WorkspaceError>
  /** Drops one file, as a commit; returns the new version once PostgreSQL has committed it; NotFound when it has no such file. */
  readonly remove: (input: RemoveInput) => Effect.Effect<string, WorkspaceError | Conflict>
}

export interface WorkspacesConfig {
  /** directory of the local repositories, one `<id>.git` each */
  readonly root: string
}

const fsError = (workspace: string, what: string) => (e: unknown) =>
  new WorkspaceError({ reason: "Filesystem", workspace, message: `could not ${what}`, detail: e instanceof Error ? e.message : String(e) })

const noWorkspace = (id: string) => new WorkspaceError({ reason: "NotFound", workspace: id, message: `no workspace ${id}` })

export class Workspaces extends Context.Service<Workspaces, WorkspacesShape>()("sagews/workspace/Workspaces") {
  static readonly layer = (config: WorkspacesConfig) => Layer.effect(Workspaces, makeWorkspaces(config))
}

const makeWorkspaces = Effect.fnUntraced(function*(config: WorkspacesConfig) {
  const store = yield* WorkspaceStore
  yield* Effect.tryPromise({ try: () => mkdir(config.root, { recursive: true, mode: 0o700 }), catch: fsError("", `create ${config.root}`) })
  // a process killed inside git (a backend's SIGKILL) left its lock files, and saves on that copy would fail for good
  yield* Effect.tryPromise({ try: () => removeLeftovers(config.root), catch: fsError("", `remove what an earlier process left in ${config.root}`) })
  /** one operation at a time per workspace in this process: a save and a sync both move the local branch */
  const locked = keyedLock()
  const gitDir = (id: string): string => join(config.root, `${id}.git`)

  const stored = (id: string) =>
    store.state(id).pipe(Effect.flatMap((state) =>
      state === undefined
        ? Effect.fail(noWorkspace(id))
        : Effect.succeed(state)))

  /** A new repository at gitDir(id) from every bundle PostgreSQL keeps, built aside and then moved in place. */
  const rebuild = Effect.fn("Workspaces.rebuild")(function*(id: string) {
    const aside = join(config.root, `.${id}.${randomUUID()}.git`)
    const fresh = repo(aside, id)
    const state = yield* Effect.gen(function*() {
      yield* fresh.init
      const { state, bundles } = yield* store.bundlesAfter(id, undefined)
      if (state === undefined) return yield* noWorkspace(id)
      yield* applyBundles(fresh, config.root, bundles)
      const head = yield* fresh.head
      if (head !== state.head) {
        return yield* new WorkspaceError({ reason: "Git", workspace: id, message: `restoring ${id} from PostgreSQL ended at ${head ?? "no commit"}, not at its head ${state.head}` })
      }
      yield* Effect.tryPromise({
        try: async () => {
          await rm(gitDir(id), { recursive: true, force: true })
          await rename(aside, gitDir(id))
        },
        catch: fsError(id, `move the restored repository to ${gitDir(id)}`),
      })
      return state
    }).pipe(Effect.ensuring(Effect.promise(() => rm(aside, { recursive: true, force: true }))))
    return { r: repo(gitDir(id), id), state }
  })

  /**
   * The local repository at PostgreSQL's head, and that head: fetches the increments it lacks, or rebuilds it. The
   * head may be newer than the one first read, when another host saved meanwhile.
   */
  const synced = Effect.fn("Workspaces.sync")(function*(id: string) {
    const first = yield* stored(id)
    if (!existsSync(gitDir(id))) return yield* rebuild(id)
    const r = repo(gitDir(id), id)
    const local = yield* r.head
    if (local === first.head) return { r, state: first }
    const { state, bundles } = yield* store.bundlesAfter(id, local)
    if (state === undefined) return yield* noWorkspace(id)
    const caughtUp = yield* applyBundles(r, config.root, bundles).pipe(
      Effect.andThen(r.head),
      Effect.catch(() => Effect.succeed(undefined)),
    )
    return caughtUp === state.head ? { r, state } : yield* rebuild(id)
  })

  const create: WorkspacesShape["create"] = Effect.fn("Workspaces.create")(function*({ id, owner, author }) {
    yield* checkId(id)
    return yield* locked(id)(Effect.gen(function*() {
      const timeMs = yield* Clock.currentTimeMillis
      const aside = join(config.root, `.${id}.${randomUUID()}.git`)
      const r = repo(aside, id)
      return yield* Effect.gen(function*() {
        yield* r.init
        const first = yield* r.commit({ parent: undefined, message: "workspace created", author, timeMs })
        yield* r.setHead(first, undefined)
        yield* store.insert({ id, owner, head: first, bundle: yield* createBundle(r), timeMs })
        yield* Effect.tryPromise({
          try: async () => {
            await rm(gitDir(id), { recursive: true, force: true }) // a leftover of a workspace PostgreSQL does not have
            await rename(aside, gitDir(id))
          },
          catch: fsError(id, `move the new repository to ${gitDir(id)}`),
        })
        return first
      }).pipe(Effect.ensuring(Effect.promise(() => rm(aside, { recursive: true, force: true }))))
    }))
  })

  /**
   * One attempt: commit on the synced head (`content` at the path, or undefined: the path removed), move the local
   * branch, store the bundle; undo the branch if not stored.
   */
  const attempt = Effect.fnUntraced(function*(input: Omit<WriteInput, "content">, content: Uint8Array | undefined) {
    const { r, state } = yield* synced(input.id)
    if (input.base !== undefined && input.base !== state.head) {
      return yield* new Conflict({ workspace: input.id, path: input.path, base: input.base, latest: state.head })
    }
    if (content === undefined && (yield* r.read(state.head, input.path)) === undefined) {
      return yield* new WorkspaceError({ reason: "NotFound", workspace: input.id, message: `workspace ${input.id} has no file ${input.path} at version ${state.head}` })
    }
    if (input.skipUnchanged === true && content !== undefined) {
      const now = yield* r.read(state.head, input.path)
      if (now !== undefined && Buffer.compare(now, content) === 0) return { version: (yield* r.lastChange(state.head, input.path)) ?? state.head, latest: undefined }
    }
    const timeMs = yield* Clock.currentTimeMillis
    const version = yield* r.commit({ parent: state.head, path: input.path, content, remove: content === undefined, message: input.message, author: input.author, timeMs })
    yield* r.setHead(version, state.head)
    const undo = r.setHead(state.head, version).pipe(Effect.ignore)
    const complete = state.chain + 1 >= COMPACT_EVERY
    // Packing the loose objects first lets the full bundle reuse their deltas instead of computing every delta of
    // the history again (docs/PERFORMANCE.md, "Workspaces": 0.6 s against tens of ms after 1,000 commits).
    const pack = complete ? r.run(["repack", "-d", "-q"]) : Effect.void
    const stored = yield* pack.pipe(
      Effect.andThen(createBundle(r, complete ? undefined : state.head)),
      Effect.flatMap((bundle) => store.commit(input.id, { from: state.head, to: version, bundle, complete, timeMs })),
      Effect.onError(() => undo),
    )
    if (stored._tag === "Committed") return { version, latest: undefined }
    yield* undo
    return { version: undefined, latest: stored.latest }
  })

  /** Commits `content` at the path (undefined: removes it), trying again when another host saved in between. */
  const change = Effect.fnUntraced(function*(input: Omit<WriteInput, "content">, content: Uint8Array | undefined) {
    for (let i = 0; ; i++) {
      const result = yield* locked(input.id)(attempt(input, content))
      if (result.version !== undefined) return result.version
      // another host saved between our sync and our commit
      if (input.base !== undefined || i + 1 >= UNBASED_RETRIES) {
        return yield* new Conflict({ workspace: input.id, path: input.path, base: input.base ?? "", latest: result.latest })
      }
    }
  })

  const write: WorkspacesShape["write"] = Effect.fn("Workspaces.write")(function*(input) {
    yield* checkId(input.id)
    yield* checkPath(input.id, input.path)
    if (input.base !== undefined) yield* checkVersion(input.id, input.base)
    const content = typeof input.content === "string" ? Buffer.from(input.content, "utf8") : input.content
    yield* checkSize(input.id, input.path, content)
    return yield* change(input, content)
  })

  const remove: WorkspacesShape["remove"] = Effect.fn("Workspaces.remove")(function*(input) {
    yield* checkId(input.id)
    yield* checkPath(input.id, input.path)
    if (input.base !== undefined) yield* checkVersion(input.id, input.base)
    return yield* change(input, undefined)
  })

  const files: WorkspacesShape["files"] = Effect.fn("Workspaces.files")(function*(id) {
    yield* checkId(id)
    return yield* locked(id)(synced(id).pipe(Effect.flatMap(({ r, state }) => Effect.map(r.files(state.head), (files) => ({ version: state.head, files })))))
  })

  const readMany: WorkspacesShape["readMany"] = Effect.fn("Workspaces.readMany")(function*(id, version, paths) {
    yield* checkId(id)
    yield* checkVersion(id, version)
    for (const path of paths) yield* checkPath(id, path)
    return yield* locked(id)(synced(id).pipe(Effect.flatMap(({ r }) => r.blobs(version, paths))))
  })

  const read: WorkspacesShape["read"] = Effect.fn("Workspaces.read")(function*(id, path, version) {
    yield* checkId(id)
    yield* checkPath(id, path)
    if (version !== undefined) yield* checkVersion(id, version)
    return yield* locked(id)(Effect.gen(function*() {
      const { r, state } = yield* synced(id)
      const at = version ?? state.head
      if (version !== undefined && !(yield* r.contains(version))) {
        return yield* new WorkspaceError({ reason: "NotFound", workspace: id, message: `workspace ${id} has no version ${version}` })
      }
      const content = yield* r.read(at, path)
      if (content === undefined) {
        return yield* new WorkspaceError({ reason: "NotFound", workspace: id, message: `workspace ${id} has no file ${path} at version ${at}` })
      }
      return content
    }))
  })

  const history: WorkspacesShape["history"] = Effect.fn("Workspaces.history")(function*(id, path) {
    yield* checkId(id)
    if (path !== undefined) yield* checkPath(id, path)
    return yield* locked(id)(synced(id).pipe(Effect.flatMap(({ r }: { r: Repo }) => r.log(path))))
  })

  const restore: WorkspacesShape["restore"] = Effect.fn("Workspaces.restore")(function*(id) {
    yield* checkId(id)
    return yield* locked(id)(rebuild(id).pipe(Effect.map(({ r }) => r.gitDir)))
  })

  const head: WorkspacesShape["head"] = (id) => checkId(id).pipe(Effect.andThen(stored(id)))

  return Workspaces.of({ create, write, read, head, history, restore, gitDir, files, readMany, remove })
})
