// The plain HTTP routes' two halves of a request: its body, read up to a limit, and a JSON reply (no body for
// undefined, as a 204 has), never cached.
import type { IncomingMessage, ServerResponse } from "node:http"

/** The body's bytes, or "too-large" once more than `limit` arrived (the rest is read and dropped). */
export const readBytes = (req: IncomingMessage, limit: number): Promise<Buffer | "too-large"> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        resolve("too-large")
        req.resume()
        return
      }
      chunks.push(chunk)
    })
    req.on("end", () => resolve(Buffer.concat(chunks)))
    req.on("error", reject)
  })

/** The body as UTF-8 text, or "too-large". */
export const readText = async (req: IncomingMessage, limit: number): Promise<string | "too-large"> => {
  const bytes = await readBytes(req, limit)
  return bytes === "too-large" ? bytes : bytes.toString("utf8")
}

/** `body` as JSON with `status` (nothing once a reply was sent or the connection is gone). */
export const reply = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  if (res.headersSent || res.destroyed) return
  const text = body === undefined ? "" : JSON.stringify(body)
  res.writeHead(status, { ...(body === undefined ? {} : { "content-type": "application/json" }), "content-length": Buffer.byteLength(text), "cache-control": "no-store", ...headers })
  res.end(text)
}
