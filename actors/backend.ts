// The backend actor: one HTTP + SockJS server of ours (src/backend/main.ts), probed on GET /healthz.
import { fileURLToPath } from "node:url"
import type { ChildSpec } from "../supervisors/child.ts"
import { type LivenessOptions, processSpec } from "./process.ts"

const MAIN = fileURLToPath(new URL("../src/backend/main.ts", import.meta.url))

export interface BackendOptions {
  readonly id: string
  readonly dataDir: string
  readonly port: number
  readonly liveness: Omit<LivenessOptions, "probe">
  readonly shutdown?: number
}

export const backendSpec = (o: BackendOptions): ChildSpec =>
  processSpec({
    id: o.id,
    command: process.execPath,
    args: [MAIN, "--data", o.dataDir, "--port", String(o.port), "--id", o.id],
    dataDir: o.dataDir,
    port: o.port,
    logFormat: "json",
    ready: { _tag: "http", port: o.port, path: "/healthz" },
    liveness: { ...o.liveness, probe: { _tag: "http", port: o.port, path: "/healthz" } },
    ...(o.shutdown !== undefined ? { shutdown: o.shutdown } : {}),
  })
