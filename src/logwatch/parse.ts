// Turns one log line into a `log` row. Every line becomes a row: a malformed one is kept whole as the message.
// Values are sanitised here so that no line can make a batch insert fail (PostgreSQL rejects NUL in text, odd dates).

export interface LogRow {
  readonly component: string
  readonly pid: number | null
  /** ISO 8601, always one PostgreSQL accepts */
  readonly ts: string
  readonly level: string
  readonly msg: string
}

const LEVELS: ReadonlySet<string> = new Set(["debug", "info", "warn", "error", "fatal"])
/** Dates outside these years are treated as missing (now): PostgreSQL and Date.toISOString agree inside them. */
const MIN_TS = Date.UTC(1, 0, 1)
const MAX_TS = Date.UTC(9999, 11, 31, 23, 59, 59, 999)
const INT4_MAX = 2_147_483_647
/** component and level are indexed or grouped on: a longer value is cut (a btree entry must stay under ~2.7 kB) */
const MAX_NAME = 200

/** `worker:1.log`, `worker:1.log.1` (rotated) -> `worker:1` */
export const componentOfFile = (fileName: string): string => fileName.replace(/\.log(\..*)?$/, "").slice(0, MAX_NAME)

const clean = (text: string): string => (text.includes("\u0000") ? text.replaceAll("\u0000", "\\u0000") : text)

const ISO_UTC = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d{1,9})?Z$/
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/** `2026-11-22T10:00:00.000Z` with every field in range: passed through as is (the common case, and cheap). */
const isValidIsoUtc = (text: string): boolean => {
  const m = ISO_UTC.exec(text)
  if (m === null) return false
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number)
  if (year === undefined || month === undefined || day === undefined) return false
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  const days = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]
  return year >= 1 && days !== undefined && day >= 1 && day <= days && (hour ?? 99) < 24 && (minute ?? 99) < 60 &&
    (second ?? 99) < 60
}

const tsOf = (value: unknown, now: number): string => {
  if (typeof value === "string" && isValidIsoUtc(value)) return value
  const ms = typeof value === "string" || typeof value === "number" ? new Date(value).getTime() : Number.NaN
  return new Date(Number.isFinite(ms) && ms >= MIN_TS && ms <= MAX_TS ? ms : now).toISOString()
}

const pidOf = (value: unknown): number | null =>
  typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= INT4_MAX ? value : null

const name = (text: string): string => clean(text.length > MAX_NAME ? text.slice(0, MAX_NAME) : text)

const levelOf = (value: unknown): string => {
  if (typeof value !== "string") return "info"
  const level = value.toLowerCase()
  return LEVELS.has(level) ? level : level === "warning" ? "warn" : name(level)
}

const msgOf = (value: unknown): string => clean(typeof value === "string" ? value : JSON.stringify(value) ?? "")

/** The line kept whole as the message: for malformed lines, and for a batch that PostgreSQL rejected anyway. */
export const verbatim = (line: string, component: string, now: number): LogRow => ({
  component,
  pid: null,
  ts: new Date(now).toISOString(),
  level: "error",
  msg: clean(line),
})

/** `line` without its `\n`; `fileComponent` names the component when the line does not. */
export const parseLine = (line: string, fileComponent: string, now: number): LogRow => {
  const text = line.endsWith("\r") ? line.slice(0, -1) : line
  if (!text.startsWith("{")) return verbatim(text, fileComponent, now)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return verbatim(text, fileComponent, now)
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || !("msg" in value)) {
    return verbatim(text, fileComponent, now)
  }
  const record: Record<string, unknown> = { ...value }
  const component = typeof record.component === "string" && record.component !== "" ? name(record.component) : fileComponent
  return {
    component,
    pid: pidOf(record.pid),
    ts: tsOf(record.ts, now),
    level: levelOf(record.level),
    msg: msgOf(record.msg),
  }
}
