// `sagews doctor`: checks what the session sandbox relies on, on this host and in this data directory (docs/SECURITY.md):
// root, cgroups, namespaces, seccomp, the link-protection sysctls, world-writable directories, and secrets and sockets
// that only the service may reach. Prints one line per check; exit 1 if any check failed.
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { join, resolve } from "node:path"
import { WorkerCgroups } from "../worker/cgroups.ts"

type Verdict = "ok" | "warn" | "FAIL"
interface Check {
  readonly verdict: Verdict
  readonly what: string
  readonly detail: string
}

const WORKER_DIR = resolve(import.meta.dirname, "../worker")
const PYTHON = "/usr/bin/python3"

const sysctl = (name: string): string | undefined => {
  try {
    return readFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, "utf8").trim()
  } catch {
    return undefined
  }
}

const mode = (path: string): number | undefined => (existsSync(path) ? statSync(path).mode & 0o777 : undefined)

/** What container.py makes private per session, and whether its seccomp module loads. */
const containerFacts = (): { seccomp: boolean; private: Array<string> } | undefined => {
  const code = "import json, container\ntry:\n    container.prepare_filter(); ok = True\nexcept Exception:\n    ok = False\nprint(json.dumps({'seccomp': ok, 'private': list(container.PRIVATE_TMP + container.PRIVATE_COPIES + (container.PRIVATE_RUN,))}))"
  const r = spawnSync(PYTHON, ["-c", code], { cwd: WORKER_DIR, encoding: "utf8", env: { PYTHONPATH: WORKER_DIR, PATH: "/usr/bin:/bin" } })
  try {
    return JSON.parse(r.stdout) as { seccomp: boolean; private: Array<string> }
  } catch {
    return undefined
  }
}

/** World-writable directories of the host that a session would otherwise share with every other session. */
const worldWritable = (dataDir: string): Array<string> => {
  const out = spawnSync("find", ["/", "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/dev", "-o", "-path", dataDir, ")", "-prune", "-o", "-xdev", "-type", "d", "-perm", "-0002", "-print"], { encoding: "utf8" })
  return out.stdout.split("\n").filter(Boolean)
}

export const doctorChecks = (dataDir: string): Array<Check> => {
  const checks: Array<Check> = []
  const add = (verdict: Verdict, what: string, detail: string): void => void checks.push({ verdict, what, detail })
  const root = process.getuid?.() === 0
  add(root ? "ok" : "FAIL", "root", root ? "sessions run as containers with a uid of their own" : "not root: sessions share this uid, with rlimits only (run sagews as root for the sandbox)")

  const cgroups = root ? WorkerCgroups.make("doctor") : undefined
  cgroups?.removeAll()
  add(cgroups !== undefined ? "ok" : "FAIL", "cgroups", cgroups !== undefined ? "memory and pids controllers writable: per-session memory, task and CPU limits" : "no writable memory and pids controllers: a session's memory is limited per process only")

  const ns = spawnSync("unshare", ["--pid", "--fork", "--mount", "--ipc", "--net", "--uts", "true"], { encoding: "utf8" })
  add(ns.status === 0 ? "ok" : "FAIL", "namespaces", ns.status === 0 ? "pid, mount, IPC, network and UTS namespaces can be made" : `unshare failed: ${ns.stderr.trim()}`)

  const facts = containerFacts()
  add(facts?.seccomp ? "ok" : "FAIL", "seccomp", facts?.seccomp ? "python3-seccomp loads: the filter refuses namespaces, mount, keyctl, bpf, perf, ptrace" : "python3-seccomp is missing (apt-get install python3-seccomp)")

  for (const name of ["fs.protected_symlinks", "fs.protected_hardlinks"]) {
    const value = sysctl(name)
    add(value === "1" ? "ok" : "warn", name, value === "1" ? "1" : `${value ?? "unknown"}: set it to 1 (sysctl -w ${name}=1); sessions do not share writable directories, but the host's other users do`)
  }

  const covered = new Set(facts?.private ?? [])
  const shared = worldWritable(resolve(dataDir)).filter((d) => ![...covered].some((c) => d === c || d.startsWith(`${c}/`)))
  add(shared.length === 0 ? "ok" : "FAIL", "world-writable", shared.length === 0 ? `every world-writable directory is private per session (${[...covered].join(", ")})` : `shared between sessions: ${shared.join(", ")}`)

  const secret = join(dataDir, "secret")
  if (existsSync(secret)) {
    const open = execFileSync("find", [secret, "-perm", "/077"], { encoding: "utf8" }).split("\n").filter(Boolean)
    add(open.length === 0 ? "ok" : "FAIL", "secrets", open.length === 0 ? `${secret}: 0700, its files 0600` : `readable by others: ${open.join(", ")}`)
  }
  for (const dir of ["run/pg", "run/memcached"]) {
    const m = mode(join(dataDir, dir))
    if (m !== undefined) add((m & 0o007) === 0 ? "ok" : "FAIL", dir, (m & 0o007) === 0 ? `mode ${m.toString(8)}: session uids cannot enter` : `mode ${m.toString(8)}: session uids can reach its socket`)
  }
  const hba = join(dataDir, "pg", "pg_hba.conf")
  if (existsSync(hba)) {
    const trust = readFileSync(hba, "utf8").split("\n").filter((l) => !l.trim().startsWith("#") && /\btrust\b/.test(l))
    add(trust.length === 0 ? "ok" : "FAIL", "pg_hba.conf", trust.length === 0 ? "no trust: every connection needs its password" : `trust lines: ${trust.join(" | ")}`)
  }
  return checks
}

export const doctorCommand = (dataDir: string, out: (s: string) => void): number => {
  const checks = doctorChecks(dataDir)
  const width = Math.max(...checks.map((c) => c.what.length))
  for (const c of checks) out(`${c.verdict.padEnd(4)}  ${c.what.padEnd(width)}  ${c.detail}`)
  return checks.some((c) => c.verdict === "FAIL") ? 1 : 0
}
