// What every part of a running backend shares: its options, the worker pool, the frame router, the session
// registry, the result cache, admission control, the issuer of client identities and the kernel versions that go
// into cache keys.
import type { KernelKind } from "../protocol/browser.ts"
import type { JsonLogger } from "../log/line.ts"
import type { Admission } from "./admission.ts"
import type { ResultCache } from "./cache.ts"
import type { IdentityIssuer } from "./identity.ts"
import type { BackendOptions } from "./options.ts"
import type { Registry } from "./registry.ts"
import type { FrameRouter } from "./router.ts"
import type { WorkerPool } from "./workers.ts"

export interface BackendContext {
  readonly options: BackendOptions
  readonly pool: WorkerPool
  readonly router: FrameRouter
  readonly registry: Registry
  readonly cache: ResultCache
  readonly admission: Admission
  readonly identities: IdentityIssuer
  readonly versions: Record<KernelKind, string>
  readonly log: JsonLogger
}
