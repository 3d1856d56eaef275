// The root's logger: JSON lines into <data>/log/sagews.log (shipped by logwatch like every other log),
// and a short human line on the terminal when `start` runs in the foreground.
import { appendFileSync, mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { Logger, References } from "effect"
import { LEVELS, messageText as text } from "../log/effect.ts"

export const rootLoggerLayer = (logFile: string, terminal: boolean) => {
  mkdirSync(dirname(logFile), { recursive: true })
  const logger = Logger.make(({ message, logLevel, date, fiber, cause }) => {
    const annotations = fiber.getRef(References.CurrentLogAnnotations)
    const component = typeof annotations.child === "string" ? annotations.child : "sagews"
    const level = LEVELS[logLevel]
    const failure = cause.reasons.length > 0 ? ` (${String(cause)})` : ""
    const msg = text(message) + failure
    const line = JSON.stringify({ ts: date.toISOString(), component: "sagews", pid: process.pid, level, msg: component === "sagews" ? msg : `${component}: ${msg}` })
    try {
      appendFileSync(logFile, line + "\n")
    } catch {
      // the data dir vanished under us: the terminal line below still tells the operator
    }
    if (terminal) process.stdout.write(`${date.toISOString().slice(11, 23)} ${level.padEnd(5)} ${component === "sagews" ? "" : component + ": "}${msg}\n`)
  })
  return Logger.layer([logger])
}

