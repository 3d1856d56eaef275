// Child specs: how a supervisor starts, restarts and stops one child. Only `id` and `start` are required.
import type { Effect, Scope } from "effect"
import type { ExitReason } from "./exit.ts"

export type Restart = "permanent" | "transient" | "temporary"
export type Shutdown = number | "brutal" | "infinity"
export type ChildType = "worker" | "supervisor"

/**
 * What a started child gives its supervisor. `start` resolves to this only once the child is ready
 * (its readiness probe passed); `exit` resolves when the child stops by itself, with the reason.
 */
export interface Running {
  readonly pid?: number | undefined
  readonly port?: number | undefined
  /** Completes when the child has exited, with why. Never fails. */
  readonly exit: Effect.Effect<ExitReason>
  /** Nested supervisors expose their own children here, so `status` can show the whole tree. */
  readonly children?: Effect.Effect<ReadonlyArray<ChildStatus>> | undefined
  /**
   * Nested supervisors: an operator restart of one of their descendants (by id), so `sagews restart worker:1`
   * reaches a child below the root. Fails with the tag "UnknownChild" when no descendant has that id.
   */
  readonly restartChild?: ((id: string) => Effect.Effect<void, { readonly _tag: string; readonly message: string }>) | undefined
}

/**
 * `start` runs inside a scope owned by the supervisor. Closing that scope must stop the child:
 * a process actor's finalizer sends SIGTERM, waits `shutdown` ms, then SIGKILLs the group.
 * A failed `start` counts as an exit with that reason (a readiness probe that never passed is a Crash or Timeout).
 */
export interface ChildSpec {
  readonly id: string
  readonly start: Effect.Effect<Running, ExitReason, Scope.Scope>
  readonly restart?: Restart
  readonly shutdown?: Shutdown
  readonly type?: ChildType
}

export const CHILD_DEFAULTS = {
  restart: "permanent",
  shutdown: 5_000,
  type: "worker",
} as const satisfies { restart: Restart; shutdown: Shutdown; type: ChildType }

export type ChildState = "starting" | "running" | "restarting" | "stopping" | "stopped" | "failed"

export interface ChildStatus {
  readonly id: string
  /** dynamic children started with a key (startChild's `options.key`) */
  readonly key?: string | undefined
  readonly state: ChildState
  readonly pid?: number | undefined
  readonly port?: number | undefined
  /** epoch ms when the current incarnation became ready */
  readonly startedAt?: number | undefined
  readonly restarts: number
  readonly lastExit?: ExitReason | undefined
  readonly children?: ReadonlyArray<ChildStatus> | undefined
}
