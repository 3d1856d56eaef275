// What runs each kernel kind, as the versions of its Debian packages: a worker registers it with its kernels
// (src/worker/registration.ts), and the result cache keys every answer on it (src/backend/cache.ts).
import { execFile } from "node:child_process"
import type { KernelKind } from "./worker.ts"

const dpkgVersion = (pkg: string): Promise<string> =>
  new Promise((resolve) => {
    execFile("dpkg-query", ["-W", "-f=${Version}", pkg], { timeout: 5_000 }, (error, stdout) => resolve(error === null ? stdout.trim() : "unknown"))
  })

/** Version strings of the kernels on this machine (Debian packages). */
export const kernelVersions = async (): Promise<Record<KernelKind, string>> => {
  const [sage, python, sympy] = await Promise.all([dpkgVersion("sagemath"), dpkgVersion("python3"), dpkgVersion("python3-sympy")])
  return { sage: `sagemath ${sage}`, python: `python3 ${python} sympy ${sympy}` }
}
