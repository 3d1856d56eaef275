// JSON log lines on stdout, the format every sagews program writes: {"ts","component","pid","level","msg"}.
import { Logger } from "effect"
import { jsonLines } from "../log/effect.ts"
import { formatLine, type Level } from "../log/line.ts"

export type { Level }

let component = "worker"
export const setLogComponent = (id: string): void => {
  component = id
}

export const log = (level: Level, msg: string, fields: Readonly<Record<string, unknown>> = {}): void => {
  process.stdout.write(formatLine(component, level, msg, fields) + "\n")
}

/** Effect's logs (the supervisors' events among them) as this worker's JSON lines, annotated with supervisor and child. */
export const workerLogger = (id: string) => Logger.layer([jsonLines(id)])
