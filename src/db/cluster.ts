// The PostgreSQL cluster on disk that sagews owns: its system user, directories, initdb and pg_hba.conf.
// PostgreSQL refuses to run as root, so as root the cluster belongs to an unprivileged system user; its socket
// directory is that user's alone (0700), so no session uid can even reach the socket.
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

/** Runs a program (as `user`), `input` on its stdin; fails with the last lines of its stderr. */
export const run = (file: string, args: ReadonlyArray<string>, user?: ClusterUser, input?: string) =>
  Effect.callback<string, ClusterError>((resume) => {
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C.UTF-8" }
    const child = execFile(file, [...args], { env, uid: user?.uid, gid: user?.gid, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) {
        const detail = String(stderr).trim().split("\n").slice(-3).join(" / ") || error.message
        resume(Effect.fail(new ClusterError({ message: `${path.basename(file)} ${args.join(" ")} failed: ${detail}` })))
      } else resume(Effect.succeed(String(stdout)))
    })
    // A child that exits before reading all of its input must not crash us with EPIPE: its exit status tells.
    child.stdin?.on("error", () => {})
    child.stdin?.end(input ?? "")
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

const chownTo = (file: string, user: ClusterUser) => {
  const { uid, gid } = user
  return uid !== undefined && gid !== undefined ? io(`chown ${file}`, () => fs.chown(file, uid, gid)) : Effect.void
}

/** Writes a file only the cluster user can read (0600, owned by it), replacing any older one in one rename. */
const writePrivate = (file: string, content: string, user: ClusterUser) =>
  Effect.gen(function*() {
    const tmp = `${file}.sagews-tmp`
    yield* io(`write ${tmp}`, () => fs.writeFile(tmp, content, { mode: 0o600 }))
    yield* io(`chmod ${tmp}`, () => fs.chmod(tmp, 0o600))
    yield* chownTo(tmp, user)
    yield* io(`rename ${tmp}`, () => fs.rename(tmp, file))
  })

/** The user must be able to traverse every directory above `dir`, or the server running as it cannot reach it. */
export const checkReachable = (dir: string, user: ClusterUser) =>
  Effect.gen(function*() {
    if (user.uid === undefined) return
    let current = path.dirname(dir)
    while (true) {
      const st = yield* io(`stat ${current}`, () => fs.stat(current))
      const ok = (st.mode & 0o001) !== 0 || (st.uid === user.uid && (st.mode & 0o100) !== 0) ||
        (st.gid === user.gid && (st.mode & 0o010) !== 0)
      if (!ok) {
        return yield* new ClusterError({
          message: `the system user ${user.name} cannot reach ${dir}: ${current} has mode ` +
            `${(st.mode & 0o777).toString(8)}; run chmod o+x ${current} or use a data dir elsewhere`,
        })
      }
      const parent = path.dirname(current)
      if (parent === current) return
      current = parent
    }
  })

/**
 * Creates the data dir (0711), `pg/` and `run/pg/` (the socket directory), the last two 0700 and owned by the
 * cluster user. Modes are set on every start, so a directory from an older version (run/pg was 0755) is closed too.
 */
export const prepareDirs = (dataDir: string, user: ClusterUser) =>
  Effect.gen(function*() {
    const p = clusterPaths(path.resolve(dataDir))
    yield* io(`mkdir ${p.data}`, () => fs.mkdir(p.data, { recursive: true }))
    yield* io(`chmod ${p.data}`, () => fs.chmod(p.data, 0o711))
    yield* io(`mkdir ${p.run}`, () => fs.mkdir(p.run, { recursive: true }))
    const runMode = (yield* io(`stat ${p.run}`, () => fs.stat(p.run))).mode & 0o777
    yield* io(`chmod ${p.run}`, () => fs.chmod(p.run, runMode | 0o011))
    for (const dir of [p.pg, p.socketDir]) {
      yield* io(`mkdir ${dir}`, () => fs.mkdir(dir, { recursive: true, mode: 0o700 }))
      yield* io(`chmod ${dir}`, () => fs.chmod(dir, 0o700))
      yield* chownTo(dir, user)
    }
    yield* checkReachable(p.data, user)
    return p
  })

export interface InitdbOptions {
  /** skip fsync (tests only: a crash of the machine may corrupt the cluster) */
  readonly noSync?: boolean | undefined
}

/**
 * Runs initdb unless `<data>/pg` already holds a cluster; a half-made cluster (no PG_VERSION) is wiped first.
 * The superuser `postgres` gets `superuserVerifier` (a SCRAM verifier, see scram.ts) as its password through a
 * --pwfile in the socket directory (the cluster user's alone), removed right after.
 */
export const initdb = (dataDir: string, user: ClusterUser, binDir: string, superuserVerifier: string, options: InitdbOptions = {}) =>
  Effect.gen(function*() {
    const { pg, socketDir } = clusterPaths(path.resolve(dataDir))
    const exists = yield* Effect.promise(() => fs.access(path.join(pg, "PG_VERSION")).then(() => true, () => false))
    if (exists) return false
    const leftovers = yield* io(`readdir ${pg}`, () => fs.readdir(pg))
    for (const name of leftovers) yield* io(`rm ${name}`, () => fs.rm(path.join(pg, name), { recursive: true, force: true }))
    const pwfile = path.join(socketDir, "initdb.pw")
    yield* writePrivate(pwfile, `${superuserVerifier}\n`, user)
    const args = ["-D", pg, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${pwfile}`, "-E", "UTF8", "--locale=C.UTF-8"]
    if (options.noSync) args.push("--no-sync")
    yield* run(path.join(binDir, "initdb"), args, user).pipe(
      Effect.ensuring(Effect.promise(() => fs.rm(pwfile, { force: true }))),
    )
    return true
  })

/** Password (scram-sha-256) for every connection, local or loopback; no `trust`, no `peer`, no replication. */
export const HBA_CONF = `# Written by sagews on every start (src/db/cluster.ts); edits here are overwritten.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
`

/**
 * With postgres.listen, after the loopback lines: other hosts only over TLS and only as a join role. The superuser
 * and the service role never log in from another host (their passwords never leave this one); a plain-text
 * connection from anywhere but loopback is rejected before any password is asked for.
 */
export const hbaConf = (listen: boolean, reservedRoles: ReadonlyArray<string> = ["postgres", "sagews"]): string =>
  listen
    ? HBA_CONF + `# other hosts (postgres.listen): TLS with the cluster's CA and a join role's scram-sha-256 password
hostnossl all     all   0.0.0.0/0     reject
hostnossl all     all   ::/0          reject
hostssl   all     ${reservedRoles.join(",")}  0.0.0.0/0  reject
hostssl   all     ${reservedRoles.join(",")}  ::/0       reject
hostssl   all     all   0.0.0.0/0     scram-sha-256
hostssl   all     all   ::/0          scram-sha-256
`
    : HBA_CONF

/** Replaces pg_hba.conf with ours (hbaConf): also what closes a cluster that an older version made with `trust`. */
export const writeHba = (dataDir: string, user: ClusterUser, listen = false) =>
  writePrivate(path.join(clusterPaths(path.resolve(dataDir)).pg, "pg_hba.conf"), hbaConf(listen), user)

/** Where the server's TLS certificate chain and key are, inside the cluster user's own 0700 pg/ directory. */
export const serverTlsPaths = (dataDir: string) => {
  const { pg } = clusterPaths(path.resolve(dataDir))
  return { cert: path.join(pg, "sagews-server.crt"), key: path.join(pg, "sagews-server.key") }
}

/**
 * Copies the host's certificate and key where the cluster user reads them (0600, its own): the certificate file is
 * the host certificate followed by the CA's, so a joining host sees the whole chain and can pin the CA (kubeadm's
 * discovery, src/cluster/discovery.ts).
 */
export const installServerTls = (
  dataDir: string,
  user: ClusterUser,
  source: { readonly hostCert: string; readonly hostKey: string; readonly caCert: string },
) =>
  Effect.gen(function*() {
    const [cert, key, ca] = yield* io("read the host certificate, its key and the CA certificate (run `sagews init`)", () =>
      Promise.all([fs.readFile(source.hostCert, "utf8"), fs.readFile(source.hostKey, "utf8"), fs.readFile(source.caCert, "utf8")]))
    const target = serverTlsPaths(dataDir)
    yield* writePrivate(target.cert, `${cert.trim()}\n${ca.trim()}\n`, user)
    yield* writePrivate(target.key, key, user)
    return target
  })
