// A client of the browser protocol as an outsider writes one from docs/PROTOCOL.md: the raw WebSocket at
// /sockjs/websocket, one JSON object per text frame, no schema of ours to lean on.
export type Msg = { readonly type: string; readonly [field: string]: unknown }

export interface RawClient {
  /** the backend's welcome */
  readonly welcome: Msg
  send(message: Record<string, unknown>): void
  sendText(text: string): void
  /** the first message not taken yet that `match`es, waiting for it up to `timeoutMs` */
  next(match: (m: Msg) => boolean, timeoutMs?: number): Promise<Msg>
  /** sends `message` and waits for the reply that carries its id (an ack, an error, a resumed, ...) */
  request(message: Record<string, unknown> & { readonly id: string }, timeoutMs?: number): Promise<Msg>
  /** every message received so far */
  readonly received: ReadonlyArray<Msg>
  close(): void
}

const REPLY_TIMEOUT_MS = 20_000

/** Connects to `http://host:port` (a backend or the front door) and waits for `welcome`. */
export const connectRaw = async (baseUrl: string): Promise<RawClient> => {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}/sockjs/websocket`)
  const received: Array<Msg> = []
  const taken = new Set<Msg>()
  const waiters = new Set<() => void>()
  ws.onmessage = (event: MessageEvent) => {
    received.push(JSON.parse(String(event.data)) as Msg)
    for (const w of [...waiters]) w()
  }
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve()
    ws.onerror = () => reject(new Error(`cannot open the raw WebSocket at ${baseUrl}`))
  })
  const next = (match: (m: Msg) => boolean, timeoutMs = REPLY_TIMEOUT_MS): Promise<Msg> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = received.find((m) => !taken.has(m) && match(m))
        if (found === undefined) return
        taken.add(found)
        waiters.delete(check)
        clearTimeout(timer)
        resolve(found)
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`no matching message within ${timeoutMs} ms; received:\n${received.map((m) => JSON.stringify(m).slice(0, 300)).join("\n")}`))
      }, timeoutMs)
      waiters.add(check)
      check()
    })
  const welcome = await next((m) => m.type === "welcome")
  const sendText = (text: string): void => ws.send(text)
  const send = (message: Record<string, unknown>): void => sendText(JSON.stringify(message))
  return {
    welcome,
    send,
    sendText,
    next,
    request: (message, timeoutMs) => {
      send(message)
      return next((m) => m.id === message.id && m.type !== "output", timeoutMs)
    },
    received,
    close: () => ws.close(),
  }
}
