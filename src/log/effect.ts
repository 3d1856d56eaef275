// Effect's log calls as our JSON lines (line.ts): the level map, a message's text, and the logger that writes one
// line per call on stdout with the log annotations (supervisor, child, ...) as fields. Worker, backend and root share it.
import { Cause, Logger, References } from "effect"
import type { LogLevel } from "effect/LogLevel"
import { formatLine, type Level } from "./line.ts"

export const LEVELS: Record<LogLevel, Level> = {
  All: "debug",
  Trace: "debug",
  Debug: "debug",
  Info: "info",
  Warn: "warn",
  Error: "error",
  Fatal: "fatal",
  None: "info",
}

/** A log call's message (one value or several) as one line of text. */
export const messageText = (message: unknown): string =>
  (Array.isArray(message) ? message : [message]).map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ")

/** One JSON line per log call, as jsonLogger writes them, so the process actor and logwatch file them alike. */
export const jsonLines = (component: string): Logger.Logger<unknown, void> =>
  Logger.make(({ message, logLevel, fiber, cause }) => {
    const annotations = fiber.getRef(References.CurrentLogAnnotations)
    const failure = cause.reasons.length > 0 ? `: ${Cause.pretty(cause)}` : ""
    process.stdout.write(formatLine(component, LEVELS[logLevel], messageText(message) + failure, annotations) + "\n")
  })
