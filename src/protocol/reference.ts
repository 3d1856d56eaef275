// The browser protocol's message reference, rendered from the zod schemas of browser.ts (through z.toJSONSchema) as
// the markdown tables of docs/PROTOCOL.md between `<!-- generated:NAME begin -->` and `<!-- generated:NAME end -->`.
// `npm run docs` rewrites them (`node src/protocol/reference.ts`); test/protocol/reference.test.ts fails when they differ.
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { z } from "zod"
import {
  ACCEPTS,
  ClientMessage,
  END_REASONS,
  EndReason,
  ERROR_CODES,
  formatCount,
  HttpError,
  HttpExecuteReply,
  HttpExecuteRequest,
  HttpIdentityReply,
  Limits,
  MAX_CODE_BYTES,
  MAX_ID_BYTES,
  MAX_INPUT_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_TOKEN_BYTES,
  OutputMessage,
  ServerMessage,
  SESSION_REQUESTS,
} from "./browser.ts"
import { Control, SessionKind } from "./worker.ts"

export const PROTOCOL_DOC = join(import.meta.dirname, "../../docs/PROTOCOL.md")

type Json = z.core.JSONSchema.BaseSchema
type Defs = Readonly<Record<string, Json>>
/** what a client writes (defaults may be left out) or what the server sends */
type Io = "input" | "output"

const jsonSchema = (schema: z.ZodType, io: Io): Json => z.toJSONSchema(schema, { io, unrepresentable: "any" })
const defsOf = (json: Json): Defs => (json.$defs ?? {}) as Defs

const refName = (ref: string): string => ref.slice(ref.lastIndexOf("/") + 1)
const resolve = (json: Json, defs: Defs): Json => (json.$ref !== undefined ? (defs[refName(json.$ref)] ?? json) : json)

/** The object schemas of a (nested) union, in order. */
const variants = (json: Json, defs: Defs): Array<Json> => {
  const resolved = resolve(json, defs)
  const alternatives = resolved.oneOf ?? resolved.anyOf
  return alternatives === undefined ? [resolved] : alternatives.flatMap((alternative) => variants(alternative as Json, defs))
}

const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n/g, " ")
const code = (value: unknown): string => `\`${typeof value === "string" ? value : JSON.stringify(value)}\``
const row = (cells: ReadonlyArray<string>): string => `| ${cells.map(cell).join(" | ")} |`
const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string =>
  [row(header), row(header.map(() => "---")), ...rows.map(row)].join("\n")

/** The JSON type of a field: `string`, `integer`, `array of OutputMessage`, ... (named schemas by name). */
const typeOf = (json: Json, defs: Defs): string => {
  if (json.$ref !== undefined) return code(refName(json.$ref))
  const alternatives = json.anyOf ?? json.oneOf
  if (alternatives !== undefined) return [...new Set(alternatives.map((a) => typeOf(a as Json, defs)))].join(" or ")
  if (Array.isArray(json.type)) return json.type.join(" or ")
  if (json.type === "array") return `array of ${json.items !== undefined && !Array.isArray(json.items) ? typeOf(json.items as Json, defs) : "anything"}`
  if (json.type === "object" && json.properties === undefined && typeof json.additionalProperties === "object") {
    return `object of ${typeOf(json.additionalProperties as Json, defs)}`
  }
  return json.type ?? "any"
}

const isBound = (n: number | undefined): n is number => n !== undefined && Math.abs(n) < Number.MAX_SAFE_INTEGER

/** What a field's value is limited to: its values, lengths in UTF-8 bytes, ranges. */
const limitsOf = (json: Json): string => {
  if (json.const !== undefined) return `always ${code(json.const)}`
  if (json.enum !== undefined) return `one of ${json.enum.map(code).join(", ")}`
  const parts: Array<string> = []
  if (json.minLength !== undefined && json.minLength > 0) parts.push("not empty")
  const maxBytes = json["maxBytes"]
  if (typeof maxBytes === "number") parts.push(`at most ${formatCount(maxBytes)} bytes of UTF-8`)
  if (json.maxLength !== undefined) parts.push(`at most ${formatCount(json.maxLength)} characters`)
  const min = isBound(json.minimum) ? json.minimum : undefined
  const max = isBound(json.maximum) ? json.maximum : undefined
  if (min !== undefined && max !== undefined) parts.push(`${formatCount(min)} to ${formatCount(max)}`)
  else if (min !== undefined) parts.push(`≥ ${formatCount(min)}`)
  else if (max !== undefined) parts.push(`≤ ${formatCount(max)}`)
  if (typeof json.exclusiveMinimum === "number") parts.push(`> ${formatCount(json.exclusiveMinimum)}`)
  if (json.type === "array" && json.items !== undefined && !Array.isArray(json.items)) {
    const each = limitsOf(json.items as Json)
    if (each !== "") parts.push(`each: ${each}`)
  }
  const alternatives = json.anyOf ?? json.oneOf
  if (alternatives !== undefined) {
    const inner = alternatives.map((a) => limitsOf(a as Json)).filter((l) => l !== "")
    parts.push(...inner.map((l, i) => (alternatives.length > 1 ? `${typeOf(alternatives[i] as Json, {})}: ${l}` : l)))
  }
  return parts.join("; ")
}

const presence = (name: string, json: Json, required: ReadonlySet<string>): string => {
  if (json.default !== undefined) return `default ${code(json.default)}`
  return required.has(name) ? "required" : "optional"
}

/** One object's fields as rows: name, type, required or default, limits, description. */
const fieldRows = (object: Json, defs: Defs, skip: ReadonlySet<string>): Array<Array<string>> => {
  const required = new Set(object.required ?? [])
  return Object.entries(object.properties ?? {})
    .filter(([name]) => !skip.has(name))
    .map(([name, field]) => {
      const json = field as Json
      const target = resolve(json, defs)
      const description = json.description ?? (json.$ref !== undefined ? (target.description ?? "") : "")
      return [code(name), typeOf(json, defs), presence(name, json, required), limitsOf(json), description]
    })
}

/** The label of a union's variant: its discriminator's value, and any other constant field (`done` with `status` `limit`). */
const variantLabel = (object: Json, discriminator: string): string => {
  const properties = (object.properties ?? {}) as Record<string, Json>
  const own = properties[discriminator]?.const
  const others = Object.entries(properties).filter(([name, p]) => name !== discriminator && p.const !== undefined)
  return `**${code(own)}**${others.map(([name, p]) => ` (${code(name)} ${code(p.const)})`).join("")}`
}

/** A union of messages: one heading row per variant (its description), then its fields but the discriminator. */
const unionTable = (schema: z.ZodType, io: Io, discriminator: string, heading: string): string => {
  const json = jsonSchema(schema, io)
  const defs = defsOf(json)
  const skip = new Set([discriminator])
  const rows = variants(json, defs).flatMap((object) => [
    [variantLabel(object, discriminator), "", "", "", "", object.description ?? ""],
    ...fieldRows(object, defs, skip).map((r) => ["", ...r]),
  ])
  return table([heading, "field", "type", "presence", "limits", "description"], rows)
}

/** One object's fields. */
const objectTable = (schema: z.ZodType, io: Io): string => {
  const json = jsonSchema(schema, io)
  const defs = defsOf(json)
  const rows = fieldRows(resolve(json, defs), defs, new Set())
  const description = resolve(json, defs).description
  return `${description !== undefined ? `${description}\n\n` : ""}${table(["field", "type", "presence", "limits", "description"], rows)}`
}

const endReasons = (): string => {
  const json = jsonSchema(EndReason, "output")
  const rows = variants(json, defsOf(json)).map((object) => {
    const properties = (object.properties ?? {}) as Record<string, Json>
    const tag = properties["_tag"]?.const
    const fields = Object.entries(properties)
      .filter(([name]) => name !== "_tag")
      .map(([name, p]) => `${code(name)} (${typeOf(p, {})}${limitsOf(p) !== "" ? `, ${limitsOf(p)}` : ""})`)
    return [code(tag), fields.join(", ") || "—", typeof tag === "string" && tag in END_REASONS ? END_REASONS[tag as keyof typeof END_REASONS] : ""]
  })
  return table(["`_tag`", "other fields", "what ended the session"], rows)
}

const errorCodes = (): string =>
  table(["code", "what happened", "what to do"], Object.entries(ERROR_CODES).map(([name, { meaning, action }]) => [code(name), meaning, action]))

const sessionKinds = (): string =>
  table(
    ["kind", "takes", "refuses with `wrong_kind`"],
    SessionKind.options.map((kind) => [
      code(kind),
      [...ACCEPTS[kind], "resume"].map(code).join(", "),
      SESSION_REQUESTS.filter((r) => !ACCEPTS[kind].includes(r)).map(code).join(", "),
    ]),
  )

const sizes = (): string =>
  table(["what", "at most", "what happens past it"], [
    ["one SockJS message, or one frame of the raw WebSocket", `${formatCount(MAX_MESSAGE_BYTES)} bytes (1 MiB) of UTF-8`, "`error` code `invalid` (`id` null); the message is dropped, the connection stays"],
    ["`code` of `run`, `execute` and `POST /api/v1/execute`", `${formatCount(MAX_CODE_BYTES)} bytes (256 KiB) of UTF-8`, "`error` code `invalid` naming `code` and its size"],
    ["`id` of a request, `session`", `${formatCount(MAX_ID_BYTES)} bytes of UTF-8`, "`error` code `invalid`"],
    ["`token` of `hello`", `${formatCount(MAX_TOKEN_BYTES)} bytes`, "`error` code `invalid`"],
    ["`data` of `terminalInput`, a string `value` of `interact`", `${formatCount(MAX_INPUT_BYTES)} bytes (64 KiB) of UTF-8`, "`error` code `invalid`"],
  ])

/** Every generated section of docs/PROTOCOL.md, by marker name. */
export const sections = (): Record<string, string> => ({
  "browser-client-messages": unionTable(ClientMessage, "input", "type", "message `type`"),
  "browser-server-messages": unionTable(ServerMessage, "output", "type", "message `type`"),
  "browser-error-codes": errorCodes(),
  "browser-session-kinds": sessionKinds(),
  "browser-output-messages": `${unionTable(OutputMessage, "output", "kind", "`kind`")}\n\nA control (\`Control\`, in \`controls\`):\n\n${objectTable(Control, "output")}`,
  "browser-end-reasons": endReasons(),
  "browser-limits": `${objectTable(Limits, "input")}\n\nSizes:\n\n${sizes()}`,
  "http-execute": [
    `Request body:\n\n${objectTable(HttpExecuteRequest, "input")}`,
    `Reply \`200\`:\n\n${objectTable(HttpExecuteReply, "output")}`,
    `Errors:\n\n${objectTable(HttpError, "output")}`,
    `\`GET /api/v1/identity\`:\n\n${objectTable(HttpIdentityReply, "output")}`,
  ].join("\n\n"),
})

const begin = (name: string): string => `<!-- generated:${name} begin: npm run docs writes this part from src/protocol/browser.ts -->`
const end = (name: string): string => `<!-- generated:${name} end -->`

/** `doc` with every generated section rewritten; an error names a section whose markers are missing or unknown. */
export const rewrite = (doc: string): string => {
  const wanted = sections()
  const found = [...doc.matchAll(/<!-- generated:([a-z-]+) begin/g)].map((m) => m[1] ?? "")
  const unknown = found.filter((name) => !(name in wanted))
  if (unknown.length > 0) throw new Error(`docs/PROTOCOL.md has generated sections no schema writes: ${unknown.join(", ")}; remove their markers`)
  let out = doc
  for (const [name, body] of Object.entries(wanted)) {
    const pattern = new RegExp(`<!-- generated:${name} begin[^>]*-->[\\s\\S]*?<!-- generated:${name} end -->`)
    if (!pattern.test(out)) throw new Error(`docs/PROTOCOL.md has no section ${name}: add ${begin(name)} and ${end(name)} where it belongs`)
    out = out.replace(pattern, () => `${begin(name)}\n${body}\n${end(name)}`)
  }
  return out
}

if (import.meta.main) {
  const doc = readFileSync(PROTOCOL_DOC, "utf8")
  const next = rewrite(doc)
  if (next === doc) console.log("docs/PROTOCOL.md is up to date")
  else {
    writeFileSync(PROTOCOL_DOC, next)
    console.log("docs/PROTOCOL.md: generated sections rewritten")
  }
}
