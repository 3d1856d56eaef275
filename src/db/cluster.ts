// The PostgreSQL cluster on disk that sagews owns: its system user, directories, initdb, and what a killed postmaster left.
// PostgreSQL refuses to run as root, so as root the cluster belongs to an unprivileged system user.
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Data, Effect } from "effect"

export class ClusterError extends Data.TaggedError("ClusterError")<{ readonly message: string }> {}

/** Who runs PostgreSQL: a system user when we are root, else ourselves (uid undefined = do not switch). */
export interface ClusterUser {
  readonly name: string
  readonly uid?: number | undefined
  readonly gid?: number | undefined
}

/** An existing system user we reuse, then the one we create when it is missing. */
const EXISTING_USER = "postgres"
const CREATED_USER = "sagews"
const DEFAULT_BIN_DIRS = ["/usr/lib/postgresql/15/bin"]

export const clusterPaths = (dataDir: string) => ({
  data: dataDir,
  pg: path.join(dataDir, "pg"),
  run: path.join(dataDir, "run"),
  socketDir: path.join(dataDir, "run", "pg"),
})

const run = (file: string, args: ReadonlyArray<string>, user?: ClusterUser) =>
  Effect.callback<string, ClusterError>((resume) => {
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C.UTF-8" }
    execFile(file, [...args], { env, uid: user?.uid, gid: user?.gid, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) {
        const detail = String(stderr).trim().split("\n").slice(-3).join(" / ") || error.message
        resume(Effect.fail(new ClusterError({ message: `${path.basename(file)} ${args.join(" ")} failed: ${detail}` })))
      } else resume(Effect.succeed(String(stdout)))
    })
  })

const lookupUser = (name: string) =>
  run("getent", ["passwd", name]).pipe(
    Effect.map((line) => {
      const [, , uid, gid] = line.trim().split(":")
      return { name, uid: Number(uid), gid: Number(gid) } satisfies ClusterUser
    }),
    Effect.option,
  )

/** Reuses `postgres` when it exists, else creates (once) the system user `sagews`. Not root: the current user. */
export const ensureSystemUser: Effect.Effect<ClusterUser, ClusterError> = Effect.gen(function*() {
  if (process.getuid?.() !== 0) return { name: process.env.USER ?? "current user" } satisfies ClusterUser
  for (const name of [EXISTING_USER, CREATED_USER]) {
    const found = yield* lookupUser(name)
    if (found._tag === "Some") return found.value
  }
  yield* run("useradd", [
    "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
    CREATED_USER,
  ])
  const created = yield* lookupUser(CREATED_USER)
  if (created._tag === "None") return yield* new ClusterError({ message: `useradd ${CREATED_USER} succeeded but getent cannot find it` })
  return created.value
})

/** The directory holding initdb and postgres: an explicit one, else the first known install that has them. */
export const findBinDir = (explicit?: string) =>
  Effect.gen(function*() {
    const candidates = explicit ? [explicit] : DEFAULT_BIN_DIRS
    for (const dir of candidates) {
      const ok = yield* Effect.promise(() => fs.access(path.join(dir, "postgres")).then(() => true, () => false))
      if (ok) return dir
    }
    return yield* new ClusterError({
      message: `no PostgreSQL binaries in ${candidates.join(", ")}: install postgresql-15 (apt-get install -y postgresql-15)`,
    })
  })

const io = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (e) => new ClusterError({ message: `${what}: ${e instanceof Error ? e.message : String(e)}` }) })

/** The user must be able to traverse every directory above `dir`, or postgres cannot reach its cluster. */
const checkReachable = (dir: string, user: ClusterUser) =>
  Effect.gen(function*() {
    if (user.uid === undefined) return
    let current = path.dirname(dir)
    while (true) {
      const st = yield* io(`stat ${current}`, () => fs.stat(current))
      const ok = (st.mode & 0o001) !== 0 || (st.uid === user.uid && (st.mode & 0o100) !== 0) ||
        (st.gid === user.gid && (st.mode & 0o010) !== 0)
      if (!ok) {
        return yield* new ClusterError({
          message: `the PostgreSQL user ${user.name} cannot reach ${dir}: ${current} has mode ` +
            `${(st.mode & 0o777).toString(8)}; run chmod o+x ${current} or use a data dir elsewhere`,
        })
      }
      const parent = path.dirname(current)
      if (parent === current) return
      current = parent
    }
  })

/** Creates the data dir (0711), `pg/` and `run/pg/`, the last two owned by the cluster user. */
export const prepareDirs = (dataDir: string, user: ClusterUser) =>
  Effect.gen(function*() {
    const p = clusterPaths(path.resolve(dataDir))
    yield* io(`mkdir ${p.data}`, () => fs.mkdir(p.data, { recursive: true }))
    yield* io(`chmod ${p.data}`, () => fs.chmod(p.data, 0o711))
    yield* io(`mkdir ${p.run}`, () => fs.mkdir(p.run, { recursive: true }))
    const runMode = (yield* io(`stat ${p.run}`, () => fs.stat(p.run))).mode & 0o777
    yield* io(`chmod ${p.run}`, () => fs.chmod(p.run, runMode | 0o011))
    for (const [dir, mode] of [[p.pg, 0o700], [p.socketDir, 0o755]] as const) {
      yield* io(`mkdir ${dir}`, () => fs.mkdir(dir, { recursive: true, mode }))
      if (user.uid !== undefined && user.gid !== undefined) {
        const uid = user.uid
        const gid = user.gid
        yield* io(`chown ${dir}`, () => fs.chown(dir, uid, gid))
      }
    }
    yield* checkReachable(p.data, user)
    return p
  })

export interface InitdbOptions {
  /** skip fsync (tests only: a crash of the machine may corrupt the cluster) */
  readonly noSync?: boolean | undefined
}

/** Runs initdb unless `<data>/pg` already holds a cluster; a half-made cluster (no PG_VERSION) is wiped first. */
export const initdb = (dataDir: string, user: ClusterUser, binDir: string, options: InitdbOptions = {}) =>
  Effect.gen(function*() {
    const { pg } = clusterPaths(path.resolve(dataDir))
    const exists = yield* Effect.promise(() => fs.access(path.join(pg, "PG_VERSION")).then(() => true, () => false))
    if (exists) return false
    const leftovers = yield* io(`readdir ${pg}`, () => fs.readdir(pg))
    for (const name of leftovers) yield* io(`rm ${name}`, () => fs.rm(path.join(pg, name), { recursive: true, force: true }))
    const args = ["-D", pg, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"]
    if (options.noSync) args.push("--no-sync")
    yield* run(path.join(binDir, "initdb"), args, user)
    return true
  })
