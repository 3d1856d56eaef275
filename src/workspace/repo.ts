// One workspace's local git repository (bare, in a directory the workspace owns): git run without a shell, with a
// clean environment (no system or user config, a fixed identity and date from the caller), and the plumbing a save,
// a read and a history need. Nothing here knows about PostgreSQL.
import { spawn } from "node:child_process"
import { Effect } from "effect"
import { WorkspaceError } from "./errors.ts"
import { BRANCH, GIT_TIMEOUT } from "./limits.ts"

export const GIT = "/usr/bin/git"

/** Who a commit is by: the caller's account, never the host's git config. */
export interface Author {
  readonly name: string
  readonly email: string
}

/** One commit, as a history lists it. */
export interface Entry {
  readonly version: string
  /** commit time, ms since the epoch (whole seconds: git's resolution) */
  readonly time: number
  readonly message: string
}

export interface GitOptions {
  readonly input?: Uint8Array | undefined
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly workspace?: string | undefined
}

/** git's environment: nothing from the host's, so no config, hook path or identity leaks in. */
const baseEnv = (gitDir: string): Record<string, string> => ({
  PATH: "/usr/bin:/bin",
  LC_ALL: "C",
  GIT_DIR: gitDir,
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  HOME: "/nonexistent",
  GIT_TERMINAL_PROMPT: "0",
  GIT_OPTIONAL_LOCKS: "0",
})

/** Runs git on `gitDir` and returns its stdout; fails with its exit code and stderr, or after GIT_TIMEOUT. */
export const git = (gitDir: string, args: ReadonlyArray<string>, options: GitOptions = {}): Effect.Effect<Buffer, WorkspaceError> =>
  Effect.callback<Buffer, WorkspaceError>((resume) => {
    const what = `git ${args.join(" ")}`
    const child = spawn(GIT, args, {
      cwd: "/",
      env: { ...baseEnv(gitDir), ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
      timeout: GIT_TIMEOUT,
      killSignal: "SIGKILL",
    })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (b: Buffer) => out.push(b))
    child.stderr.on("data", (b: Buffer) => err.push(b))
    child.stdin.on("error", () => {}) // git may exit before reading all of it; its exit code tells why
    child.on("error", (e) =>
      resume(Effect.fail(new WorkspaceError({ reason: "Git", workspace: options.workspace, message: `could not run ${what}`, detail: e.message }))))
    child.on("close", (code, signal) => {
      const stderr = Buffer.concat(err).toString("utf8").trim()
      if (code === 0) return resume(Effect.succeed(Buffer.concat(out)))
      resume(Effect.fail(
        signal !== null
          ? new WorkspaceError({ reason: "Timeout", workspace: options.workspace, message: `${what} took longer than ${GIT_TIMEOUT} ms and was killed`, detail: stderr })
          : new WorkspaceError({ reason: "Git", workspace: options.workspace, message: `${what} failed with exit code ${code}`, detail: stderr }),
      ))
    })
    child.stdin.end(options.input ?? Buffer.alloc(0))
    return Effect.sync(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    })
  })

const text = (b: Buffer): string => b.toString("utf8").trim()

/** git's date for `ms`: whole seconds, UTC. */
const gitDate = (ms: number): string => `@${Math.floor(ms / 1000)} +0000`

export const identity = (author: Author, timeMs: number): Record<string, string> => ({
  GIT_AUTHOR_NAME: author.name,
  GIT_AUTHOR_EMAIL: author.email,
  GIT_AUTHOR_DATE: gitDate(timeMs),
  GIT_COMMITTER_NAME: author.name,
  GIT_COMMITTER_EMAIL: author.email,
  GIT_COMMITTER_DATE: gitDate(timeMs),
})

/** A repository's operations, bound to its directory. */
export const repo = (gitDir: string, workspace: string) => {
  const run = (args: ReadonlyArray<string>, options: Omit<GitOptions, "workspace"> = {}) => git(gitDir, args, { ...options, workspace })
  return {
    gitDir,
    workspace,
    run,
    init: run(["init", "--quiet", "--bare", `--initial-branch=${BRANCH.slice("refs/heads/".length)}`, gitDir]).pipe(Effect.asVoid),
    /** the branch's commit, or undefined in a repository without one */
    head: run(["rev-parse", "--verify", "--quiet", BRANCH]).pipe(
      Effect.map(text),
      Effect.catchIf((e) => e.reason === "Git", () => Effect.succeed(undefined)),
    ),
    /**
     * A commit on top of `parent` (none: the first) whose tree is the parent's with `path` set to `content` (or, with
     * `remove`, without `path`); the branch is not moved (see `setHead`). A temporary index keeps the bare repository
     * free of a working tree.
     */
    commit: Effect.fn("Repo.commit")(function*(input: {
      readonly parent: string | undefined
      readonly path?: string | undefined
      readonly content?: Uint8Array | undefined
      readonly remove?: boolean | undefined
      readonly message: string
      readonly author: Author
      readonly timeMs: number
    }) {
      let tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904" // git's empty tree
      if (input.path !== undefined && (input.content !== undefined || input.remove === true)) {
        const env = { GIT_INDEX_FILE: `${gitDir}/sagews-index` }
        if (input.parent !== undefined) yield* run(["read-tree", input.parent], { env })
        else yield* run(["read-tree", "--empty"], { env })
        if (input.remove === true) yield* run(["rm", "--cached", "--quiet", "--", `:(literal)${input.path}`], { env })
        else {
          const blob = text(yield* run(["hash-object", "-w", "--stdin"], { input: input.content }))
          yield* run(["update-index", "--add", "--cacheinfo", `100644,${blob},${input.path}`], { env })
        }
        tree = text(yield* run(["write-tree"], { env }))
      }
      const parent = input.parent === undefined ? [] : ["-p", input.parent]
      return text(yield* run(["commit-tree", tree, ...parent, "-F", "-"], {
        input: Buffer.from(input.message, "utf8"),
        env: identity(input.author, input.timeMs),
      }))
    }),
    /** Moves the branch to `to` if it is still at `from` (undefined: it must not exist yet). */
    setHead: (to: string, from: string | undefined) =>
      run(["update-ref", BRANCH, to, from ?? "0000000000000000000000000000000000000000"]).pipe(Effect.asVoid),
    /** `version` is on the branch's history (not a commit a conflict left behind) */
    contains: (version: string) =>
      run(["merge-base", "--is-ancestor", version, BRANCH]).pipe(
        Effect.as(true),
        Effect.catchIf((e) => e.reason === "Git", () => Effect.succeed(false)),
      ),
    /** the file at `version`, or undefined when it has no such file */
    read: (version: string, path: string) =>
      run(["cat-file", "blob", `${version}:${path}`]).pipe(
        Effect.map((b): Uint8Array | undefined => b),
        Effect.catchIf((e) => e.reason === "Git", () => Effect.succeed(undefined)),
      ),
    /** every file of `version`'s tree with its size in bytes, sorted by path */
    files: (version: string) =>
      run(["ls-tree", "-r", "-l", "-z", "--full-tree", version]).pipe(
        Effect.map((b): ReadonlyArray<{ readonly path: string; readonly size: number }> =>
          b.toString("utf8").split("\0").filter((s) => s !== "").flatMap((record) => {
            // "<mode> blob <oid> <size>\t<path>": submodules and other kinds are not files
            const tab = record.indexOf("\t")
            const [, type, , size] = record.slice(0, tab).split(/ +/)
            return type === "blob" ? [{ path: record.slice(tab + 1), size: Number(size) }] : []
          })),
      ),
    /** the files `paths` at `version` in one git process (`cat-file --batch`); a path with no file is left out */
    blobs: (version: string, paths: ReadonlyArray<string>) =>
      run(["cat-file", "--batch"], { input: Buffer.from(paths.map((p) => `${version}:${p}\n`).join(""), "utf8") }).pipe(
        Effect.map((out) => {
          const found = new Map<string, Uint8Array>()
          let at = 0
          for (const path of paths) {
            const eol = out.indexOf(10, at)
            if (eol < 0) break
            const [, type, size] = out.subarray(at, eol).toString("utf8").split(" ")
            at = eol + 1
            if (type !== "blob" || size === undefined) continue // "<name> missing", or not a file
            found.set(path, out.subarray(at, at + Number(size)))
            at += Number(size) + 1
          }
          return found
        }),
      ),
    /** the newest commit up to `version` that changed `path` (undefined when none did) */
    lastChange: (version: string, path: string) =>
      run(["log", "-1", "--format=%H", version, "--", `:(literal)${path}`]).pipe(Effect.map((b) => text(b) || undefined)),
    /** newest first; of `path` only when given */
    log: (path?: string) =>
      run(["log", "--format=%H%x1f%ct%x1f%B%x1e", BRANCH, "--", ...(path === undefined ? [] : [`:(literal)${path}`])]).pipe(
        Effect.map((b): ReadonlyArray<Entry> =>
          b.toString("utf8").split("\x1e").map((s) => s.replace(/^\n/, "")).filter((s) => s !== "").map((record) => {
            const [version = "", time = "0", message = ""] = record.split("\x1f")
            return { version, time: Number(time) * 1000, message: message.replace(/\n+$/, "") }
          })),
      ),
  }
}

export type Repo = ReturnType<typeof repo>
