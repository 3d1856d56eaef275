// Types the client library hands to its users, derived from the shared zod schemas in src/protocol/browser.ts.
import type { ServerMessage } from "../protocol/browser.ts"

export type { OutputMsg, ServerMessage, KernelKind, Language, SessionKind, Limits } from "../protocol/browser.ts"
export type Reply = Exclude<ServerMessage, { type: "welcome" | "output" | "ended" | "runOutput" | "detached" }>
export type IdentityReply = Extract<ServerMessage, { type: "identity" }>
export type OutputEvent = Extract<ServerMessage, { type: "output" }>
export type EndedEvent = Extract<ServerMessage, { type: "ended" }>
export type ErrorReply = Extract<ServerMessage, { type: "error" }>
export type FileListReply = Extract<ServerMessage, { type: "fileList" }>
export type SavedReply = Extract<ServerMessage, { type: "saved" }>
export type CompletionsReply = Extract<ServerMessage, { type: "completions" }>
export type InspectionReply = Extract<ServerMessage, { type: "inspection" }>
/** another connection resumed the session: its output goes there now */
export type DetachedEvent = Extract<ServerMessage, { type: "detached" }>
export interface RunReply {
  readonly reply: Reply
  readonly outputs: ReadonlyArray<import("../protocol/browser.ts").OutputMsg>
}
