// JSON lines over a stream (worker ⇄ forkserver pipes, worker ⇄ kernel unix socket): one object per line.
import type { Readable, Writable } from "node:stream"
import { z } from "zod"

const AnyObject = z.record(z.string(), z.unknown())
export type LineMessage = z.infer<typeof AnyObject>

/** Longest line accepted: a kernel is user code and may write anything to its socket. */
export const MAX_LINE_CHARS = 16 * 1024 * 1024

/**
 * Calls `onMessage` for each complete line that is a JSON object; other lines go to `onBadLine`. A line past
 * MAX_LINE_CHARS destroys the stream (and calls `onOverflow`) instead of growing without bound.
 */
export const readLines = (
  stream: Readable,
  onMessage: (message: LineMessage) => void,
  onBadLine: (line: string) => void,
  onOverflow: () => void = () => undefined,
): void => {
  let pending = ""
  stream.setEncoding("utf8")
  stream.on("data", (chunk: string) => {
    // Only a chunk with a newline completes a line: a long line costs O(length), not O(length²).
    if (!chunk.includes("\n")) {
      pending += chunk
      if (pending.length > MAX_LINE_CHARS) {
        pending = ""
        onOverflow()
        stream.destroy()
      }
      return
    }
    const lines = (pending + chunk).split("\n")
    pending = lines.pop() ?? ""
    for (const line of lines) {
      if (line.trim() === "") continue
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        onBadLine(line)
        continue
      }
      const object = AnyObject.safeParse(parsed)
      if (object.success) onMessage(object.data)
      else onBadLine(line)
    }
  })
}

export const writeLine = (stream: Writable, message: unknown): void => {
  if (!stream.destroyed && stream.writable) stream.write(JSON.stringify(message) + "\n")
}
