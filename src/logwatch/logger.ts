// logwatch's own log lines: JSON on stdout (the process actor files them under log/logwatch.log).
// logwatch ships that file too, so it logs state changes only, never per batch: no feedback loop.
import { jsonLogger, type Level } from "../log/line.ts"

const logger = jsonLogger("logwatch")

export const log = (level: Level, msg: string): void => logger[level](msg)
