// A SockJS round trip from Node with the real sockjs-client over one named transport: `ping` -> `pong`
// (docs/PROTOCOL.md). Resolves with the pong, which names the backend that answered.
import SockJS from "sockjs-client"

export interface Pong {
  readonly type: "pong"
  readonly id: string
  readonly backend: string
}

export const sockjsPing = (url: string, transport: "websocket" | "xhr-streaming" | "xhr-polling", id: string, timeoutMs = 15_000): Promise<Pong> =>
  new Promise((resolve, reject) => {
    const sock = new SockJS(url, undefined, { transports: [transport] })
    const timer = setTimeout(() => {
      sock.close()
      reject(new Error(`no pong over ${transport} from ${url} within ${timeoutMs} ms`))
    }, timeoutMs)
    sock.onopen = () => sock.send(JSON.stringify({ type: "ping", id }))
    sock.onmessage = (e: { data: string }) => {
      const msg = JSON.parse(e.data) as { type: string; id?: string }
      if (msg.type !== "pong" || msg.id !== id) return // the welcome comes first
      clearTimeout(timer)
      sock.close()
      resolve(msg as Pong)
    }
    sock.onclose = (e: { code: number; reason: string }) => {
      clearTimeout(timer)
      reject(new Error(`SockJS over ${transport} closed (${e.code} ${e.reason}) before the pong`))
    }
  })
