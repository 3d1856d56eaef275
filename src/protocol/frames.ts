// Length-prefixed JSON frames for backend ⇄ worker: a 4-byte big-endian byte length, then that many bytes of UTF-8 JSON.
// The decoder streams (frames may arrive split or batched) and refuses a frame past its size limit before buffering it.

/** Largest frame either side accepts after authentication: a few plots in one display message fit. */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024
/** Largest frame accepted before authentication: a challenge answer is ~100 bytes. */
export const MAX_PREAUTH_FRAME_BYTES = 1024
const HEADER_BYTES = 4

export const encodeFrame = (message: unknown): Buffer => {
  const body = Buffer.from(JSON.stringify(message), "utf8")
  const header = Buffer.alloc(HEADER_BYTES)
  header.writeUInt32BE(body.length, 0)
  return Buffer.concat([header, body])
}

export type FrameError =
  | { readonly _tag: "Oversized"; readonly bytes: number; readonly limit: number }
  | { readonly _tag: "Malformed"; readonly detail: string }

export const describeFrameError = (error: FrameError): string =>
  error._tag === "Oversized"
    ? `frame of ${error.bytes} bytes is larger than the limit of ${error.limit} bytes`
    : `frame is not valid UTF-8 JSON: ${error.detail}`

export type DecodeResult =
  | { readonly _tag: "Frames"; readonly frames: ReadonlyArray<unknown> }
  | { readonly _tag: "Failed"; readonly error: FrameError; readonly frames: ReadonlyArray<unknown> }

/**
 * Streaming decoder. `push` returns every complete frame so far; after a failure the decoder is dead
 * (the stream cannot be resynchronised) and the caller must close the connection.
 */
export class FrameDecoder {
  private chunks: Array<Buffer> = []
  private buffered = 0
  private failed = false
  limit: number

  constructor(limit: number = MAX_FRAME_BYTES) {
    this.limit = limit
  }

  push(chunk: Buffer): DecodeResult {
    if (this.failed) return { _tag: "Frames", frames: [] }
    this.chunks.push(chunk)
    this.buffered += chunk.length
    const frames: Array<unknown> = []
    while (this.buffered >= HEADER_BYTES) {
      const head = this.peek(HEADER_BYTES)
      const length = head.readUInt32BE(0)
      if (length > this.limit) return this.fail({ _tag: "Oversized", bytes: length, limit: this.limit }, frames)
      if (this.buffered < HEADER_BYTES + length) break
      const body = this.take(HEADER_BYTES + length).subarray(HEADER_BYTES)
      try {
        frames.push(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body)))
      } catch (error) {
        return this.fail({ _tag: "Malformed", detail: error instanceof Error ? error.message : String(error) }, frames)
      }
    }
    return { _tag: "Frames", frames }
  }

  private fail(error: FrameError, frames: ReadonlyArray<unknown>): DecodeResult {
    this.failed = true
    this.chunks = []
    this.buffered = 0
    return { _tag: "Failed", error, frames }
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]
    if (first !== undefined && first.length >= n) return first.subarray(0, n)
    const joined = Buffer.concat(this.chunks)
    this.chunks = [joined]
    return joined.subarray(0, n)
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 && this.chunks[0] !== undefined ? this.chunks[0] : Buffer.concat(this.chunks)
    const out = joined.subarray(0, n)
    const rest = joined.subarray(n)
    this.chunks = rest.length > 0 ? [rest] : []
    this.buffered = rest.length
    return out
  }
}
