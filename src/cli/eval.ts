// `sagews eval 'CODE' [--kernel sage|python]`: one stateless execution through the running stack's HTTP API
// (POST /api/v1/execute, docs/PROTOCOL.md), printed like a terminal session would show it.
import { z } from "zod"
import { OutputMessage } from "../protocol/worker.ts"
import { UsageError } from "./args.ts"

const Reply = z.object({
  status: z.string(),
  cached: z.boolean(),
  ms: z.number(),
  message: z.string().optional(),
  limit: z.string().optional(),
  outputs: z.array(OutputMessage),
})

const ErrorReply = z.object({ error: z.string(), message: z.string() })

export const KERNELS = ["sage", "python"] as const

export interface EvalOptions {
  readonly url: string
  readonly code: string
  readonly kernel: string
  readonly json: boolean
  readonly out: (s: string) => void
  readonly err: (s: string) => void
}

/** Returns the exit code: 0 when the code ran without error, 1 otherwise. */
export const evalCommand = async (o: EvalOptions): Promise<number> => {
  if (!(KERNELS as ReadonlyArray<string>).includes(o.kernel)) throw new UsageError(`--kernel expects sage or python, got ${JSON.stringify(o.kernel)}`)
  let res: Response
  try {
    res = await fetch(new URL("/api/v1/execute", o.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: o.code, kernel: o.kernel }),
    })
  } catch (e) {
    throw new Error(`cannot reach sagews at ${o.url}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}. Is it running? (sagews status)`)
  }
  const body: unknown = await res.json().catch(() => undefined)
  if (!res.ok) {
    const failure = ErrorReply.safeParse(body)
    throw new Error(failure.success ? `${failure.data.error}: ${failure.data.message}` : `HTTP ${res.status} from ${o.url}`)
  }
  const reply = Reply.parse(body)
  if (o.json) {
    o.out(JSON.stringify(reply))
    return reply.status === "ok" ? 0 : 1
  }
  for (const m of reply.outputs) {
    switch (m.kind) {
      case "stdout":
        o.out(m.text.replace(/\n$/, ""))
        break
      case "stderr":
        o.err(m.text.replace(/\n$/, ""))
        break
      case "display": {
        const text = m.data["text/plain"]
        o.out(text ?? `[${Object.keys(m.data).join(", ")}]`)
        break
      }
      case "error":
        o.err([...m.traceback, `${m.ename}: ${m.evalue}`].join("\n"))
        break
      default:
        break
    }
  }
  if (reply.status !== "ok") o.err(`sagews: ${reply.status}${reply.limit ? ` (limit: ${reply.limit})` : ""}${reply.message ? `: ${reply.message}` : ""}`)
  return reply.status === "ok" ? 0 : 1
}
