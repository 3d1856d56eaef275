// The JSON log line that every program of ours prints on stdout (docs/ARCHITECTURE.md, "The data directory").
// The process actor writes these lines to <data>/log/<id>.log and logwatch ships them to PostgreSQL.

export type Level = "debug" | "info" | "warn" | "error" | "fatal"

export interface LogLine {
  readonly ts: string
  readonly component: string
  readonly pid: number
  readonly level: Level
  readonly msg: string
}

/** One line; `fields` add context (never overriding the five that every line has). */
export const formatLine = (component: string, level: Level, msg: string, fields: Readonly<Record<string, unknown>> = {}): string =>
  JSON.stringify({ ...fields, ts: new Date().toISOString(), component, pid: process.pid, level, msg } satisfies LogLine)

/** A logger for a program of ours: one JSON line per call on stdout. */
export const jsonLogger = (component: string) => {
  const write = (level: Level) => (msg: string) => {
    process.stdout.write(formatLine(component, level, msg) + "\n")
  }
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error"), fatal: write("fatal") }
}

export type JsonLogger = ReturnType<typeof jsonLogger>
