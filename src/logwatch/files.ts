// Follows every `<data>/log/*.log` by inode: new files, renamed (rotated, `*.log.N`) files read to their end, truncation.
// Read positions advance only when the caller says a batch was committed, so a failed insert is simply read again.
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { componentOfFile } from "./parse.ts"

/** bytes read from one file per batch; a line longer than this is cut into pieces of this size */
export const CHUNK_BYTES = 1 << 20
/** ms a rotated file must stay unchanged before it is closed (its writer may append for a while after the rename) */
export const ROTATE_WAIT = 2_000

/** `x.log.1`: a rotated log file, read to its end even when logwatch never saw it under its `.log` name */
const ROTATED_NAME = /\.log\.\d+$/

interface Tracked {
  readonly ino: number
  readonly fd: fs.FileHandle
  name: string
  component: string
  /** committed read position in bytes */
  offset: number
  /** no longer at a `*.log` path (renamed, replaced or deleted): read to its end, then close */
  rotated: boolean
  size: number
  changedAt: number
}

/** Lines read from one file, and the position after them. */
export interface FileSlice {
  readonly ino: number
  readonly name: string
  readonly component: string
  readonly lines: ReadonlyArray<string>
  readonly end: number
}

export interface Batch {
  readonly slices: ReadonlyArray<FileSlice>
  /** files that are gone and fully read: their offset rows can be deleted */
  readonly forget: ReadonlyArray<number>
  readonly lineCount: number
}

export type FileEvent = { readonly kind: "opened" | "rotated" | "closed" | "truncated"; readonly name: string }

export class LogFiles {
  private readonly tracked = new Map<number, Tracked>()
  private readonly buffer = Buffer.allocUnsafe(CHUNK_BYTES)
  private start = 0

  readonly dir: string
  private readonly onEvent: (event: FileEvent) => void

  constructor(dir: string, onEvent: (event: FileEvent) => void = () => {}) {
    this.dir = dir
    this.onEvent = onEvent
  }

  /** Committed offsets by inode, as loaded from the database: the truth after a (re)connect. */
  private committed = new Map<number, number>()

  resetOffsets(committed: ReadonlyMap<number, number>): void {
    this.committed = new Map(committed)
    for (const file of this.tracked.values()) file.offset = committed.get(file.ino) ?? 0
  }

  /** Every inode in the directory at the last sync, log or not. */
  private present = new Set<number>()

  /** Looks at the directory: opens new `*.log` files and unfinished rotated ones, notices renames and truncation. */
  async sync(now: number): Promise<void> {
    const names = await fs.readdir(this.dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return []
      throw error
    })
    const live = new Map<number, string>()
    const other = new Map<number, string>()
    const unfinished = new Map<number, string>()
    this.present = new Set()
    for (const name of names) {
      const st = await fs.lstat(path.join(this.dir, name)).catch(() => undefined)
      if (!st?.isFile()) continue
      this.present.add(st.ino)
      if (name.endsWith(".log")) live.set(st.ino, name)
      else {
        other.set(st.ino, name)
        // A rotated file that logwatch has not finished, or never saw (it was down during the rotation): read it.
        const committed = this.committed.get(st.ino)
        if (committed === undefined ? ROTATED_NAME.test(name) : committed < st.size) unfinished.set(st.ino, name)
      }
    }
    for (const [ino, name] of live) await this.track(ino, name, false, now)
    for (const [ino, name] of unfinished) await this.track(ino, name, true, now)
    for (const file of this.tracked.values()) {
      const st = await file.fd.stat()
      if (!live.has(file.ino) && !file.rotated) this.onEvent({ kind: "rotated", name: file.name })
      file.rotated = !live.has(file.ino) // renamed back to a `.log` name: live again
      file.name = live.get(file.ino) ?? other.get(file.ino) ?? file.name
      file.component = componentOfFile(file.name)
      if (st.size !== file.size) file.changedAt = now
      if (st.size < file.offset) {
        // Truncated in place (copytruncate): start again at 0.
        file.offset = 0
        this.onEvent({ kind: "truncated", name: file.name })
      }
      file.size = st.size
    }
  }

  private async track(ino: number, name: string, rotated: boolean, now: number): Promise<void> {
    if (this.tracked.has(ino)) return
    const fd = await fs.open(path.join(this.dir, name), "r").catch(() => undefined)
    if (fd === undefined) return
    const st = await fd.stat()
    if (st.ino !== ino) {
      await fd.close() // replaced between lstat and open: the next sync sees the new one
      return
    }
    const committed = this.committed.get(ino) ?? 0
    // An offset past the end means the inode was reused by a new file (or truncated while we were away).
    const offset = committed <= st.size ? committed : 0
    this.tracked.set(ino, { ino, fd, name, component: componentOfFile(name), offset, rotated, size: st.size, changedAt: now })
    this.onEvent({ kind: "opened", name })
  }

  /**
   * Reads complete lines from the committed offsets, up to `maxLines` and `maxBytes` in all. A rotated file that
   * has been quiet for ROTATE_WAIT gives its unterminated tail as a last line.
   */
  async read(maxLines: number, maxBytes: number, now: number): Promise<Batch> {
    await this.closeFinished(now)
    const files = [...this.tracked.values()]
    const slices: Array<FileSlice> = []
    // Offset rows of files that are gone: deleted with the next commit, so a reused inode starts at 0.
    const forget = [...this.committed.keys()].filter((ino) => !this.present.has(ino) && !this.tracked.has(ino))
    let lineCount = 0
    let bytes = 0
    this.start = files.length === 0 ? 0 : (this.start + 1) % files.length
    for (let i = 0; i < files.length && lineCount < maxLines && bytes < maxBytes; i++) {
      const file = files[(this.start + i) % files.length]
      if (file === undefined || file.offset >= file.size) continue
      const want = Math.min(CHUNK_BYTES, file.size - file.offset, maxBytes - bytes)
      const { bytesRead } = await file.fd.read(this.buffer, 0, want, file.offset)
      const finishing = file.rotated && now - file.changedAt >= ROTATE_WAIT && file.offset + bytesRead === file.size
      const lines: Array<string> = []
      let pos = 0
      while (pos < bytesRead && lineCount < maxLines) {
        const nl = this.buffer.indexOf(10, pos)
        if (nl === -1 || nl >= bytesRead) {
          // No newline: a partial line (wait for it) unless the chunk is full or the file is finished.
          if (finishing || (pos === 0 && bytesRead === CHUNK_BYTES)) {
            lines.push(this.buffer.toString("utf8", pos, bytesRead))
            lineCount++
            pos = bytesRead
          }
          break
        }
        lines.push(this.buffer.toString("utf8", pos, nl))
        lineCount++
        pos = nl + 1
      }
      bytes += pos
      if (pos > 0) slices.push({ ino: file.ino, name: file.name, component: file.component, lines, end: file.offset + pos })
    }
    return { slices, forget, lineCount }
  }

  /** Rotated files read to their (committed) end and quiet for ROTATE_WAIT are closed. */
  private async closeFinished(now: number): Promise<void> {
    for (const file of [...this.tracked.values()]) {
      if (file.rotated && file.offset >= file.size && now - file.changedAt >= ROTATE_WAIT) {
        this.tracked.delete(file.ino)
        await file.fd.close().catch(() => {})
        this.onEvent({ kind: "closed", name: file.name })
      }
    }
  }

  /** The batch is in the database: advance the read positions. */
  committedBatch(batch: Batch): void {
    for (const slice of batch.slices) {
      const file = this.tracked.get(slice.ino)
      if (file !== undefined) file.offset = slice.end
      this.committed.set(slice.ino, slice.end)
    }
    for (const ino of batch.forget) this.committed.delete(ino)
  }

  async close(): Promise<void> {
    for (const file of this.tracked.values()) await file.fd.close().catch(() => {})
    this.tracked.clear()
  }
}
