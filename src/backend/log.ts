// The backend's log and its end: Effect's log lines become the house's JSON lines (src/log/line.ts) on stdout, with
// the backend's id as component and the log annotations (supervisor, child) as fields; exit codes for runMain.
import { Cause, Effect, Exit, Layer, Logger } from "effect"
import type { Teardown } from "effect/Runtime"
import { jsonLines } from "../log/effect.ts"
import { formatLine } from "../log/line.ts"
import { Options, OptionsError } from "./options.ts"

/** the component of the one line a backend writes when its options are bad (it has no id yet) */
const NO_ID = "backend"

/** Replaces Effect's default logger with the JSON lines of this backend's id. */
export const BackendLog = {
  layer: Layer.unwrap(Options.useSync((options) => Logger.layer([jsonLines(options.id)]))),
}

/** A failure that ends the program is its last line (fatal); being stopped is not a failure. */
export const logFailure = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tapCause(self, (cause) => (Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logFatal(`the backend stops: ${Cause.pretty(cause)}`)))

/**
 * Exit codes: 0 when stopped (SIGTERM or SIGINT interrupt the program), 2 for a bad command line (said on one last
 * line, since no logger exists without options), 1 for any other failure (logFailure has said why).
 */
export const teardown: Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return onExit(0)
  const error = Cause.squash(exit.cause)
  if (error instanceof OptionsError) {
    process.stdout.write(formatLine(NO_ID, "fatal", error.message) + "\n")
    return onExit(error.reason === "Usage" ? 2 : 1)
  }
  onExit(1)
}
