// The one signaller of the house: the stop protocol for a process group (polite signal, wait `shutdown` ms, SIGKILL
// the group, wait until the main process is reaped and the group is empty) and the escalation that ends a session.
import { type Duration, Effect, Option } from "effect"
import type { Shutdown } from "../supervisors/child.ts"
import { groupGone } from "./procstat.ts"

/** how often the group is checked while waiting for it to empty */
const GROUP_POLL = "20 millis"

/** Sends `signal` to every process of group `pgid`; a group that is already gone is not an error. */
export const signalGroup = (pgid: number, signal: NodeJS.Signals): void => send(-pgid, signal)

/** Sends `signal` to one process; a process that is already gone is not an error. */
export const signalProcess = (pid: number, signal: NodeJS.Signals): void => send(pid, signal)

const send = (target: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(target, signal)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === "ESRCH") return
    const what = target < 0 ? `process group ${-target}` : `process ${target}`
    throw new Error(`cannot send ${signal} to ${what}: ${code}`, { cause: error })
  }
}

/** Completes once no process of group `pgid` is left. */
export const awaitGroupGone = (pgid: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    while (!groupGone(pgid)) yield* Effect.sleep(GROUP_POLL)
  })

/** SIGKILLs the group, then waits until the main process has exited and the group is empty. */
export const killGroup = (pgid: number, mainExited: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.gen(function*() {
    yield* Effect.sync(() => signalGroup(pgid, "SIGKILL"))
    yield* mainExited
    // Something may have joined the group between the signal and its delivery (a fork in flight).
    yield* Effect.sync(() => signalGroup(pgid, "SIGKILL"))
    yield* awaitGroupGone(pgid)
  })

export interface StopOptions {
  readonly pgid: number
  /** completes when the main process has exited and was reaped */
  readonly mainExited: Effect.Effect<void>
  readonly signal: NodeJS.Signals
  readonly shutdown: Shutdown
  /** told when the polite signal did not work within `shutdown` ms */
  readonly onEscalate: (afterMs: number) => Effect.Effect<void>
}

/**
 * Stops a process group. "brutal": SIGKILL at once. A number: `signal`, then SIGKILL whatever is left of
 * the group after that many ms. "infinity": `signal`, wait for the main process however long it takes,
 * then SIGKILL what it left behind.
 */
export const stopGroup = (options: StopOptions): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { pgid, mainExited, shutdown } = options
    if (shutdown === "brutal") return yield* killGroup(pgid, mainExited)
    yield* Effect.sync(() => {
      signalGroup(pgid, options.signal)
      // A stopped (SIGSTOPped) process acts on the polite signal only once continued.
      signalGroup(pgid, "SIGCONT")
    })
    if (shutdown === "infinity") {
      yield* mainExited
    } else {
      const done = yield* Effect.timeoutOption(Effect.andThen(mainExited, awaitGroupGone(pgid)), shutdown)
      if (done._tag === "None") yield* options.onEscalate(shutdown)
    }
    yield* killGroup(pgid, mainExited)
  })

/**
 * Runs `steps` (say SIGINT, SIGQUIT, SIGKILL) one after another, each followed by up to `grace` of waiting for
 * `gone`; stops at the first step after which it is gone. True if it went within the steps' time.
 */
export const escalate = (steps: ReadonlyArray<Effect.Effect<void>>, grace: Duration.Input, gone: Effect.Effect<void>): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    for (const step of steps) {
      yield* step
      if (Option.isSome(yield* Effect.timeoutOption(gone, grace))) return true
    }
    return false
  })
