// Types the client library hands to its users, derived from the shared zod schemas in src/protocol/browser.ts.
import type { ServerMessage } from "../protocol/browser.ts"

export type { OutputMsg, ServerMessage, KernelKind, SessionKind, Limits } from "../protocol/browser.ts"
export type Reply = Exclude<ServerMessage, { type: "welcome" | "output" | "ended" | "runOutput" }>
export type IdentityReply = Extract<ServerMessage, { type: "identity" }>
export type OutputEvent = Extract<ServerMessage, { type: "output" }>
export type EndedEvent = Extract<ServerMessage, { type: "ended" }>
export type ErrorReply = Extract<ServerMessage, { type: "error" }>
export interface RunReply {
  readonly reply: Reply
  readonly outputs: ReadonlyArray<import("../protocol/browser.ts").OutputMsg>
}
