// Loads the configuration: conf/sagews.json, then the operator's file, then SAGEWS_* variables; validated once.
// Every error names the field, the value, where the value came from and what was expected.
import { readFileSync } from "node:fs"
import { hostname } from "node:os"
import { fileURLToPath } from "node:url"
import { z } from "zod"
import { CheckedConfigSchema, type Config } from "./schema.ts"

export const DEFAULTS_FILE = fileURLToPath(new URL("../../conf/sagews.json", import.meta.url))

/** Variables that are not config fields but mean something to the CLI. */
const NON_FIELD_VARS = new Set(["SAGEWS_DATA", "SAGEWS_CONFIG", "SAGEWS_UNDER_TINI", "SAGEWS_DAEMON", "SAGEWS_BACKEND_CONFIG"])

export class ConfigError extends Error {
  readonly problems: ReadonlyArray<string>
  constructor(problems: ReadonlyArray<string>) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`)
    this.name = "ConfigError"
    this.problems = problems
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v)

const readJsonFile = (file: string): JsonObject => {
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (e) {
    throw new ConfigError([`cannot read config file ${file}: ${(e as Error).message}`])
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (e) {
    throw new ConfigError([`config file ${file} is not valid JSON: ${(e as Error).message}`])
  }
  if (!isObject(parsed)) throw new ConfigError([`config file ${file} must hold a JSON object, got ${JSON.stringify(parsed)}`])
  return parsed
}

/** Deep merge; `origin` records which source set each leaf, for error messages. */
const merge = (base: JsonObject, over: JsonObject, source: string, origin: Map<string, string>, prefix = ""): JsonObject => {
  const out: JsonObject = { ...base }
  for (const [key, value] of Object.entries(over)) {
    const path = prefix ? `${prefix}.${key}` : key
    const current = out[key]
    if (isObject(value) && isObject(current)) out[key] = merge(current, value, source, origin, path)
    else {
      out[key] = value
      origin.set(path, source)
    }
  }
  return out
}

const toEnvName = (path: ReadonlyArray<string>): string =>
  "SAGEWS_" + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("_")

const leafPaths = (obj: JsonObject, prefix: ReadonlyArray<string> = []): Array<ReadonlyArray<string>> =>
  Object.entries(obj).flatMap(([k, v]) => (k.startsWith("$") ? [] : isObject(v) ? leafPaths(v, [...prefix, k]) : [[...prefix, k]]))

const parseEnvValue = (raw: string): Json => {
  try {
    const v: unknown = JSON.parse(raw)
    if (typeof v === "number" || typeof v === "boolean") return v
  } catch {
    // not JSON: a plain string
  }
  return raw
}

/** SAGEWS_CACHE_MEMORY_MB=128 -> { cache: { memoryMb: 128 } }; an unknown SAGEWS_ name is an error. */
const fromEnv = (env: NodeJS.ProcessEnv, defaults: JsonObject): { overrides: JsonObject; names: Map<string, string>; problems: string[] } => {
  const byName = new Map(leafPaths(defaults).map((p) => [toEnvName(p), p]))
  const overrides: JsonObject = {}
  const names = new Map<string, string>()
  const problems: string[] = []
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith("SAGEWS_") || NON_FIELD_VARS.has(name) || raw === undefined) continue
    const path = byName.get(name)
    if (!path) {
      problems.push(`${name} is not a sagews setting (known: ${[...byName.keys()].join(", ")})`)
      continue
    }
    let node = overrides
    for (const key of path.slice(0, -1)) {
      const next = node[key]
      node = isObject(next) ? next : (node[key] = {})
    }
    node[path[path.length - 1]!] = parseEnvValue(raw)
    names.set(path.join("."), name)
  }
  return { overrides, names, problems }
}

const valueAt = (obj: unknown, path: ReadonlyArray<PropertyKey>): unknown =>
  path.reduce<unknown>((node, key) => (isObject(node) ? node[String(key)] : Array.isArray(node) ? node[Number(key)] : undefined), obj)

const describeIssue = (issue: z.core.$ZodIssue, merged: JsonObject, origin: Map<string, string>): string => {
  const path = issue.path.map(String).join(".")
  if (issue.code === "unrecognized_keys") {
    const where = path ? `${path}.` : ""
    return `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => where + k).join(", ")}: remove or correct ${issue.keys.length > 1 ? "them" : "it"}`
  }
  const value = valueAt(merged, issue.path)
  // a list (signIn.providers) is set whole by one source: an item's field comes from where the list came from
  const list = issue.path.findIndex((k) => typeof k === "number")
  const from = origin.get(path) ?? (list > 0 ? origin.get(issue.path.slice(0, list).map(String).join(".")) : undefined) ?? DEFAULTS_FILE
  return `${path} = ${value === undefined ? "(missing)" : JSON.stringify(value)} (from ${from}): ${issue.message}`
}

export interface LoadOptions {
  readonly file?: string | undefined
  readonly env?: NodeJS.ProcessEnv
  /** command-line overrides such as --port, applied last */
  readonly overrides?: JsonObject
}

export const loadConfig = (options: LoadOptions = {}): Config => {
  const origin = new Map<string, string>()
  const defaults = readJsonFile(DEFAULTS_FILE)
  let merged = defaults
  if (options.file) merged = merge(merged, readJsonFile(options.file), options.file, origin)
  const { overrides, names, problems } = fromEnv(options.env ?? process.env, defaults)
  merged = merge(merged, overrides, "environment", origin)
  for (const [path, name] of names) origin.set(path, name)
  if (options.overrides) merged = merge(merged, options.overrides, "command line", origin)
  const result = CheckedConfigSchema.safeParse(merged)
  if (!result.success) problems.push(...result.error.issues.map((i) => describeIssue(i, merged, origin)))
  if (problems.length > 0 || !result.success) throw new ConfigError(problems)
  const config = result.data
  return { ...config, host: config.host || hostname() }
}

/** The URL a browser on this machine uses: haproxy's front port. */
export const frontUrl = (config: Pick<Config, "bind" | "port">): string => {
  const host = config.bind === "0.0.0.0" ? "127.0.0.1" : config.bind === "::" ? "::1" : config.bind
  return `http://${host.includes(":") ? `[${host}]` : host}:${config.port}/`
}
