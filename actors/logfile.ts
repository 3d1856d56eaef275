// Writes a child's output to <dataDir>/log/<id>.log as JSON lines {"ts","component","pid","level","msg"}:
// wraps plain lines, passes through lines that already are JSON objects, and follows rotation of the file.
import { closeSync, fstatSync, mkdirSync, openSync, statSync, writeSync } from "node:fs"
import { dirname } from "node:path"
import type { LogLevel } from "./process.ts"

const LEVELS: ReadonlySet<string> = new Set<LogLevel>(["debug", "info", "warn", "error", "fatal"])
/** how often (ms) the path is checked for rotation (renamed or removed by logwatch or an operator) */
const ROTATION_CHECK_MS = 1_000
/** a line longer than this is cut and written in pieces rather than buffered without end */
export const MAX_LINE = 64 * 1024

export type Stream = "stdout" | "stderr"

export interface LineContext {
  readonly component: string
  readonly pid: number
  readonly stream: Stream
  readonly levelOf: (line: string, stream: Stream) => LogLevel
}

export const defaultLevelOf = (_line: string, stream: Stream): LogLevel => (stream === "stdout" ? "info" : "error")

/** One log record as a JSON line (no newline), for the actor's own events and for wrapped output. */
export const formatRecord = (component: string, pid: number, level: LogLevel, msg: string): string =>
  JSON.stringify({ ts: new Date().toISOString(), component, pid, level, msg })

export const wrapLine = (line: string, ctx: LineContext): string =>
  formatRecord(ctx.component, ctx.pid, ctx.levelOf(line, ctx.stream), line)

/** A line that is a JSON object keeps its fields; missing or invalid ones are filled in. Others are wrapped. */
export const passThroughLine = (line: string, ctx: LineContext): string => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return wrapLine(line, ctx)
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return wrapLine(line, ctx)
  const record = value as Record<string, unknown>
  const level = typeof record.level === "string" && LEVELS.has(record.level)
    ? record.level
    : ctx.levelOf(line, ctx.stream)
  return JSON.stringify({
    ...record,
    ts: typeof record.ts === "string" ? record.ts : new Date().toISOString(),
    component: typeof record.component === "string" ? record.component : ctx.component,
    pid: typeof record.pid === "number" ? record.pid : ctx.pid,
    level,
    msg: typeof record.msg === "string" ? record.msg : JSON.stringify(record.msg ?? ""),
  })
}

/** Splits a byte stream into lines (without "\n" or "\r\n"); a partial last line waits for its end. */
export class LineSplitter {
  private pending = ""
  private readonly decoder = new TextDecoder()

  push(chunk: Uint8Array): Array<string> {
    const text = this.pending + this.decoder.decode(chunk, { stream: true })
    const lines = text.split("\n")
    this.pending = lines.pop() ?? ""
    while (this.pending.length > MAX_LINE) {
      lines.push(this.pending.slice(0, MAX_LINE))
      this.pending = this.pending.slice(MAX_LINE)
    }
    return lines.map(stripCr)
  }

  /** the rest, at end of stream */
  end(): Array<string> {
    const rest = this.pending + this.decoder.decode()
    this.pending = ""
    return rest === "" ? [] : [stripCr(rest)]
  }
}

const stripCr = (line: string): string => (line.endsWith("\r") ? line.slice(0, -1) : line)

/**
 * An append-only log file. Opened with O_APPEND; when the path has been renamed or removed since, the next
 * write reopens it. Writes are synchronous and small (one per chunk of output), so the order of lines is
 * kept and the child's pipes are never left unread. A failing write is reported once on our stderr.
 */
export class LogFile {
  private fd: number | undefined
  private ino = 0
  private checkedAt = 0
  private lastError: string | undefined
  /** after close(), late output (a pipe held open by a stray process) is dropped rather than reopening the file */
  private closed = false

  readonly path: string

  constructor(path: string) {
    this.path = path
    this.open()
  }

  /** Appends JSON lines (each without its newline). */
  write(lines: ReadonlyArray<string>): void {
    if (lines.length === 0 || this.closed) return
    const now = Date.now()
    if (now - this.checkedAt >= ROTATION_CHECK_MS) {
      this.checkedAt = now
      if (this.rotated()) this.reopen()
    }
    if (this.fd === undefined) this.open()
    if (this.fd === undefined) return
    try {
      writeSync(this.fd, lines.join("\n") + "\n")
    } catch (error) {
      this.report(error)
    }
  }

  close(): void {
    this.closed = true
    if (this.fd === undefined) return
    try {
      closeSync(this.fd)
    } catch (error) {
      this.report(error)
    }
    this.fd = undefined
  }

  private open(): void {
    try {
      mkdirSync(dirname(this.path), { recursive: true })
      this.fd = openSync(this.path, "a", 0o640)
      this.ino = fstatSync(this.fd).ino
      this.checkedAt = Date.now()
      this.lastError = undefined
    } catch (error) {
      this.fd = undefined
      this.report(error)
    }
  }

  private reopen(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd)
      } catch (error) {
        this.report(error)
      }
      this.fd = undefined
    }
    this.open()
  }

  private rotated(): boolean {
    try {
      return statSync(this.path).ino !== this.ino
    } catch {
      return true
    }
  }

  private report(error: unknown): void {
    const message = `sagews: cannot write log file ${this.path}: ${(error as Error).message}`
    if (message === this.lastError) return
    this.lastError = message
    process.stderr.write(message + "\n")
  }
}
