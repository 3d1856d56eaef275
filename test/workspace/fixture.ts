// A real PostgreSQL for the workspace tests (the postgres actor, migrations applied), an account to own workspaces,
// and Workspaces services on root directories of their own: two roots on one database are two hosts.
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, ManagedRuntime, Result } from "effect"
import pg from "pg"
import { postgresSpec } from "../../actors/postgres.ts"
import { serviceUrl } from "../../src/db/credentials.ts"
import { Workspaces } from "../../src/workspace/workspaces.ts"
import { WorkspaceStore } from "../../src/workspace/store.ts"
import { leftoverProcesses } from "../logwatch/fixture.ts"
import { freePort, startSpec } from "../web/harness.ts"

export const AUTHOR = { name: "Ada Lovelace", email: "ada@example.org" }

export interface Host {
  readonly root: string
  /** runs `f` against this host's Workspaces; the result, failure included, as a Result */
  readonly run: <A, E>(effect: Effect.Effect<A, E, Workspaces>) => Promise<Result.Result<A, E>>
  readonly ok: <A, E>(effect: Effect.Effect<A, E, Workspaces>) => Promise<A>
  /** the local repository of workspace `id` on this host */
  readonly gitDirOf: (id: string) => string
  readonly close: () => Promise<void>
}

export interface Database {
  readonly dataDir: string
  readonly url: string
  readonly owner: string
  readonly sql: <R extends pg.QueryResultRow>(text: string, params?: ReadonlyArray<unknown>) => Promise<ReadonlyArray<R>>
  /**
   * A host with a fresh, empty root directory. `beforeBundles` runs each time it is about to read bundles from
   * PostgreSQL: a test makes another host save at that moment.
   */
  readonly host: (options?: { readonly beforeBundles?: () => Promise<void> }) => Promise<Host>
  readonly stop: () => Promise<void>
}

export const startDatabase = async (): Promise<Database> => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "sagews-ws-"))
  await fs.mkdir(path.join(dataDir, "log"))
  const port = await freePort()
  const postgres = await startSpec(postgresSpec({ dataDir, port, fastInit: true }))
  const url = await serviceUrl(dataDir, { port })
  const client = new pg.Client({ connectionString: url })
  client.on("error", () => {})
  await client.connect()
  const sql = async <R extends pg.QueryResultRow>(text: string, params: ReadonlyArray<unknown> = []) => (await client.query<R>(text, [...params])).rows
  const [account] = await sql<{ id: string }>("INSERT INTO accounts (email) VALUES ('ada@example.org') RETURNING id")
  const hosts: Array<Host> = []
  const host = async (options: { readonly beforeBundles?: () => Promise<void> } = {}): Promise<Host> => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), "sagews-ws-root-"))
    const { beforeBundles } = options
    const store = beforeBundles === undefined
      ? WorkspaceStore.layer(url)
      : Layer.effect(WorkspaceStore, Effect.gen(function*() {
        const real = yield* WorkspaceStore
        return WorkspaceStore.of({
          ...real,
          bundlesAfter: (id, after) => Effect.promise(beforeBundles).pipe(Effect.andThen(real.bundlesAfter(id, after))),
        })
      })).pipe(Layer.provide(WorkspaceStore.layer(url)))
    const runtime = ManagedRuntime.make(Workspaces.layer({ root }).pipe(Layer.provide(store)))
    const run = <A, E>(effect: Effect.Effect<A, E, Workspaces>) => runtime.runPromise(Effect.result(effect))
    const h: Host = {
      root,
      run,
      gitDirOf: (id) => path.join(root, `${id}.git`),
      ok: async (effect) => {
        const r = await run(effect)
        if (Result.isFailure(r)) throw new Error(`expected success, got ${JSON.stringify(r.failure)}`)
        return r.success
      },
      close: async () => {
        await runtime.dispose()
        await fs.rm(root, { recursive: true, force: true })
      },
    }
    hosts.push(h)
    return h
  }
  return {
    dataDir,
    url,
    owner: account?.id ?? "",
    sql,
    host,
    stop: async () => {
      for (const h of hosts) await h.close()
      await client.end()
      await postgres.stop()
      const left = await leftoverProcesses(dataDir)
      await fs.rm(dataDir, { recursive: true, force: true })
      if (left.length > 0) throw new Error(`left running: ${left.join(", ")}`)
    },
  }
}

/** `git log` of a bare repository as plain git prints it: version, time, author, message. */
export const gitLog = (gitDir: string): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile("/usr/bin/git", ["--git-dir", gitDir, "log", "--format=%H %ct %an <%ae> %s", "main"], { env: { PATH: "/usr/bin:/bin", GIT_CONFIG_NOSYSTEM: "1", HOME: "/nonexistent" } }, (error, stdout, stderr) =>
      error === null ? resolve(stdout) : reject(new Error(`git log: ${stderr}`))))

/** a realistic worksheet: ~20 KB of nbformat-4 JSON; `n` changes one cell's source and output a little */
export const notebook = (n: number): string =>
  JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { title: "Fourier series", kernelspec: { name: "sagemath", display_name: "SageMath", language: "sage" } },
    cells: Array.from({ length: 60 }, (_, i) => ({
      cell_type: "code",
      execution_count: i === 7 ? n : i,
      metadata: {},
      source: [`f${i}(x) = sum(sin((2*k+1)*x)/(2*k+1) for k in range(${i === 7 ? n : i}))\n`, `plot(f${i}, (x, -pi, pi))\n`],
      outputs: [{ output_type: "stream", name: "stdout", text: [`${(i * 7919 + (i === 7 ? n : 0)).toString(16).repeat(24).slice(0, 160)}\n`] }],
    })),
  }, null, 1)
