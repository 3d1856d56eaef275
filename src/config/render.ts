// Renders the `{{name}}` templates in conf/ (haproxy, nginx): plain substitution that fails loudly,
// naming every placeholder without a value, so no config is ever written with a hole in it.
import { readFile, rename, writeFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { Data, Effect } from "effect"

/** The repo's conf/ directory, where the templates live. */
export const CONF_DIR = fileURLToPath(new URL("../../conf/", import.meta.url))

export type TemplateValues = Readonly<Record<string, string | number>>

export class TemplateError extends Data.TaggedError("TemplateError")<{
  /** the template's name or path, for the message */
  readonly template: string
  /** placeholders that had no value (empty when the template itself could not be read or written) */
  readonly missing: ReadonlyArray<string>
  readonly message: string
}> {}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g

/** Every placeholder name in a template, once each, in order of appearance. */
export const placeholders = (template: string): ReadonlyArray<string> => [
  ...new Set(Array.from(template.matchAll(PLACEHOLDER), (m) => m[1] ?? "")),
]

/**
 * Substitutes every `{{name}}` with `values[name]`. Fails with a TemplateError naming each placeholder
 * that has no value; a value that is `undefined` or an empty string counts as missing.
 */
export const renderTemplate = (
  template: string,
  values: TemplateValues,
  name = "template",
): Effect.Effect<string, TemplateError> => {
  const missing = placeholders(template).filter((key) => {
    const value = values[key]
    return value === undefined || value === ""
  })
  if (missing.length > 0) {
    const list = missing.map((key) => `{{${key}}}`).join(", ")
    return Effect.fail(
      new TemplateError({
        template: name,
        missing,
        message: `${name}: no value for ${list}; pass ${missing.length === 1 ? "it" : "them"} to the renderer`,
      }),
    )
  }
  return Effect.succeed(template.replace(PLACEHOLDER, (_, key: string) => String(values[key])))
}

/**
 * Reads `templatePath`, renders it and writes the result to `outPath` atomically (a temp file renamed
 * over it), so a reader never sees half a config.
 */
export const renderTemplateFile = (
  templatePath: string,
  outPath: string,
  values: TemplateValues,
): Effect.Effect<string, TemplateError> =>
  Effect.gen(function* () {
    const template = yield* Effect.tryPromise({
      try: () => readFile(templatePath, "utf8"),
      catch: (e) => ioError(templatePath, `cannot read the template: ${String(e)}`),
    })
    const text = yield* renderTemplate(template, values, templatePath)
    const tmp = `${outPath}.${process.pid}.tmp`
    yield* Effect.tryPromise({
      try: async () => {
        await writeFile(tmp, text, { mode: 0o644 })
        await rename(tmp, outPath)
      },
      catch: (e) => ioError(templatePath, `cannot write ${outPath}: ${String(e)}`),
    })
    return text
  })

const ioError = (template: string, message: string): TemplateError =>
  new TemplateError({ template, missing: [], message })
