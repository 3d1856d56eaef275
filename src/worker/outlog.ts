// A session's output log: per-session sequence numbers and a bounded buffer of recent frames, so a
// reconnecting backend can resume from the last sequence number it saw.
import type { EndedFrame, OutputFrame } from "../protocol/worker.ts"

export type LoggedFrame = OutputFrame | EndedFrame

export class OutputLog {
  private frames: Array<{ frame: LoggedFrame; bytes: number }> = []
  private bytes = 0
  private seq = 0
  private readonly maxMessages: number
  private readonly maxBytes: number

  constructor(maxMessages: number, maxBytes: number) {
    this.maxMessages = maxMessages
    this.maxBytes = maxBytes
  }

  nextSeq(): number {
    return ++this.seq
  }

  get lastSeq(): number {
    return this.seq
  }

  get firstKept(): number {
    return this.frames[0]?.frame.seq ?? this.seq + 1
  }

  add(frame: LoggedFrame): void {
    const bytes = JSON.stringify(frame).length
    this.frames.push({ frame, bytes })
    this.bytes += bytes
    while (this.frames.length > 1 && (this.frames.length > this.maxMessages || this.bytes > this.maxBytes)) {
      this.bytes -= this.frames.shift()!.bytes
    }
  }

  /** Frames with seq >= fromSeq that are still kept. */
  since(fromSeq: number): Array<LoggedFrame> {
    return this.frames.filter((f) => f.frame.seq >= fromSeq).map((f) => f.frame)
  }
}
