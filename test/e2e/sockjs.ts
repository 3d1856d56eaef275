// A SockJS round trip from Node with the real sockjs-client, over one named transport.
import SockJS from "sockjs-client"

export const sockjsEcho = (url: string, transport: "websocket" | "xhr-streaming" | "xhr-polling", message: string, timeoutMs = 15_000): Promise<string> =>
  new Promise((resolve, reject) => {
    const sock = new SockJS(url, undefined, { transports: [transport] })
    const timer = setTimeout(() => {
      sock.close()
      reject(new Error(`no echo over ${transport} from ${url} within ${timeoutMs} ms`))
    }, timeoutMs)
    sock.onopen = () => sock.send(message)
    sock.onmessage = (e: { data: string }) => {
      clearTimeout(timer)
      sock.close()
      resolve(e.data)
    }
    sock.onclose = (e: { code: number; reason: string }) => {
      clearTimeout(timer)
      reject(new Error(`SockJS over ${transport} closed (${e.code} ${e.reason}) before the echo`))
    }
  })
