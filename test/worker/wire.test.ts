// The wire: frame encoding/decoding, and a real worker refusing unauthenticated, malformed and oversized
// peers with an error frame and a close while staying up for well-behaved ones.
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { mkdtemp } from "node:fs/promises"
import { tmpdir } from "node:os"
import { connect, type Socket } from "node:net"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encodeFrame, FrameDecoder, MAX_PREAUTH_FRAME_BYTES } from "../../src/protocol/frames.ts"
import { WorkerClient } from "../../src/wire/client.ts"
import { answerChallenge } from "../../src/wire/secret.ts"
import { freePort, removeDataDir, startTestWorker, stopAndCheck, type TestWorker } from "./harness.ts"

describe("frames", () => {
  it("decodes frames split across chunks and batched in one", () => {
    const bytes = Buffer.concat([encodeFrame({ a: 1 }), encodeFrame({ b: "é" }), encodeFrame([3])])
    const decoder = new FrameDecoder()
    const out: Array<unknown> = []
    for (let i = 0; i < bytes.length; i += 3) {
      const result = decoder.push(bytes.subarray(i, i + 3))
      expect(result._tag).toBe("Frames")
      out.push(...result.frames)
    }
    expect(out).toEqual([{ a: 1 }, { b: "é" }, [3]])
  })

  it("refuses an oversized frame from its header alone", () => {
    const header = Buffer.alloc(4)
    header.writeUInt32BE(1_000_000, 0)
    const result = new FrameDecoder(1000).push(header)
    expect(result._tag).toBe("Failed")
    if (result._tag === "Failed") expect(result.error).toEqual({ _tag: "Oversized", bytes: 1_000_000, limit: 1000 })
  })

  it("refuses bytes that are not JSON", () => {
    const body = Buffer.from("{nope", "utf8")
    const header = Buffer.alloc(4)
    header.writeUInt32BE(body.length, 0)
    const result = new FrameDecoder().push(Buffer.concat([header, body]))
    expect(result._tag).toBe("Failed")
  })
})

/** A raw peer: collects every frame the worker sends until it closes. */
const rawPeer = (port: number): Promise<{ socket: Socket; frames: Array<Record<string, unknown>>; closed: Promise<void> }> =>
  new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" })
    const decoder = new FrameDecoder()
    const frames: Array<Record<string, unknown>> = []
    socket.on("error", () => undefined)
    const closed = new Promise<void>((done) => socket.on("close", () => done()))
    socket.on("data", (chunk: Buffer) => {
      for (const frame of decoder.push(chunk).frames) {
        frames.push(frame as Record<string, unknown>)
        if (frames.length === 1) resolve({ socket, frames, closed })
      }
    })
  })

describe("worker handshake", () => {
  let worker: TestWorker
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: { first: 210_000, last: 210_999 }, pool: 0 })
  })
  afterAll(async () => {
    await stopAndCheck(worker)
  })

  it("speaks first with a challenge", async () => {
    const peer = await rawPeer(worker.port)
    expect(peer.frames[0]).toMatchObject({ type: "challenge", worker: "worker:1", version: 1 })
    expect(String(peer.frames[0]?.["nonce"])).toMatch(/^[0-9a-f]{64}$/)
    peer.socket.destroy()
  })

  const refused = async (send: (socket: Socket, nonce: string) => void): Promise<Array<Record<string, unknown>>> => {
    const peer = await rawPeer(worker.port)
    send(peer.socket, String(peer.frames[0]?.["nonce"]))
    await peer.closed
    return peer.frames.slice(1)
  }

  it("closes a peer with a wrong answer", async () => {
    const frames = await refused((s) => s.write(encodeFrame({ type: "auth", hmac: "0".repeat(64) })))
    expect(frames).toEqual([{ type: "error", message: "authentication failed: wrong answer to the challenge" }])
  })

  it("closes a peer that sends anything before auth", async () => {
    const frames = await refused((s) => s.write(encodeFrame({ type: "open", session: "s", kernel: "python" })))
    expect(frames[0]).toMatchObject({ type: "error", message: expect.stringContaining('first frame must be "auth"') })
  })

  it("closes a peer answering with another secret", async () => {
    const frames = await refused((s, nonce) => s.write(encodeFrame({ type: "auth", hmac: answerChallenge(Buffer.from("x".repeat(64)), nonce) })))
    expect(frames[0]).toMatchObject({ type: "error" })
  })

  it("closes a peer sending garbage or an oversized frame", async () => {
    const garbage = await refused((s) => s.write(Buffer.from([0, 0, 0, 5, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b])))
    expect(garbage[0]).toMatchObject({ type: "error", message: expect.stringContaining("not valid UTF-8 JSON") })
    const big = await refused((s) => s.write(encodeFrame({ type: "auth", hmac: "a".repeat(MAX_PREAUTH_FRAME_BYTES) })))
    expect(big[0]).toMatchObject({ type: "error", message: expect.stringContaining("larger than the limit") })
  })

  it("closes an authenticated peer sending an invalid frame, and stays up for others", async () => {
    const client = await worker.connect()
    const closed = client.closed
    client.send({ type: "execute", session: "", id: "x", code: "1" })
    expect(await closed).toBe("connection closed")
    const again = await worker.connect()
    expect(await again.ping()).toBeGreaterThanOrEqual(0) // it answers (ping rejects when the worker is gone)
    again.close()
  })
})

describe("worker over TLS", () => {
  it("authenticates and runs frames over TLS when configured", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "sagews-worker-"))
    const cert = join(dataDir, "tls.crt")
    const key = join(dataDir, "tls.key")
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=worker", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert], { stdio: "ignore" })
    const worker = await startTestWorker({ uidRange: { first: 211_000, last: 211_099 }, pool: 0, kernels: ["python"], tls: { cert, key } }, { dataDir, port: await freePort() })
    const client = await WorkerClient.connect({ port: worker.port, secret: worker.secret, tls: { ca: readFileSync(cert) } })
    expect(client.worker).toBe("worker:1")
    expect(await client.ping()).toBeGreaterThanOrEqual(0) // it answers (ping rejects when the worker is gone)
    client.close()
    await expect(WorkerClient.connect({ port: worker.port, secret: worker.secret, timeout: 2_000 })).rejects.toThrow()
    expect(await worker.stop()).toBe(0)
    await removeDataDir(worker)
  })
})
