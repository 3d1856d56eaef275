// A cell's language (docs/PAGE.md "A cell's language"): the page kernel's own unless chosen in the cell's bar, then one
// of those Sage runs through its interfaces, or HTML; kept in the cell's notebook metadata as `metadata.sagews.language`
// (a cell in the kernel's own language has none there, so an older worksheet reads as it always did).
import { LANGUAGES } from "../protocol/browser.ts"
import type { KernelKind, Language } from "./types.ts"

export { LANGUAGES }

/** What the language menu calls each one. */
export const LANGUAGE_NAMES: Readonly<Record<Language, string>> = {
  sage: "Sage",
  python: "Python",
  gap: "GAP",
  gp: "PARI/GP",
  maxima: "Maxima",
  singular: "Singular",
  r: "R",
  octave: "Octave",
  html: "HTML",
}

const sagewsOf = (metadata: Readonly<Record<string, unknown>>): Record<string, unknown> | undefined => {
  const sagews = metadata["sagews"]
  return typeof sagews === "object" && sagews !== null && !Array.isArray(sagews) ? (sagews as Record<string, unknown>) : undefined
}

/** The language a saved cell names; none (the kernel's own) when it names none, or one this page does not know. */
export const languageOf = (metadata: Readonly<Record<string, unknown>>): Language | undefined => {
  const named = sagewsOf(metadata)?.["language"]
  return LANGUAGES.find((language) => language === named)
}

/** `metadata` with `language` recorded, or, for none, taken out (and `sagews` with it when nothing else is in it). */
export const withLanguage = (metadata: Readonly<Record<string, unknown>>, language: Language | undefined): Record<string, unknown> => {
  const { sagews: _sagews, ...rest } = metadata
  const { language: _language, ...others } = sagewsOf(metadata) ?? {}
  const sagews = language !== undefined ? { ...others, language } : others
  return Object.keys(sagews).length > 0 ? { ...rest, sagews } : rest
}

/** Does the kernel complete and explain code of this language (its own Python and Sage), or only run it? */
export const kernelReads = (language: Language): boolean => language === "sage" || language === "python"

/** The cell's language menu: every language, the kernel's own first. */
export const languageMenu = (kernel: KernelKind): HTMLSelectElement => {
  const select = document.createElement("select")
  select.className = "cell-language"
  select.title = "The language of this cell"
  select.setAttribute("aria-label", "Language of this cell")
  fillMenu(select, kernel)
  return select
}

/** (Re)fills the menu for the page's kernel: its own language is the first option and the default. */
export const fillMenu = (select: HTMLSelectElement, kernel: KernelKind): void => {
  const order = [kernel, ...LANGUAGES.filter((l) => l !== kernel)]
  select.replaceChildren(...order.map((language) => {
    const option = document.createElement("option")
    option.value = language
    option.textContent = language === kernel ? `${LANGUAGE_NAMES[language]} (kernel)` : LANGUAGE_NAMES[language]
    return option
  }))
}

/** languages a first line `%%name` (or `%name`) names: what the kernel runs through Sage's interfaces, and HTML */
const FIRST_LINE = new RegExp(`^%%?(${LANGUAGES.filter((l) => !kernelReads(l)).join("|")})[ \\t]*\\n`)

/**
 * Code kept as text alone, read back as a cell: a first line that names a language the kernel runs (Sage's interfaces
 * in a Sage kernel, HTML in either) becomes the cell's language, and the rest its code; else the code as it is.
 */
export const namedLanguage = (text: string, kernel: KernelKind): { code: string; language?: Language } => {
  const line = FIRST_LINE.exec(text)
  const language = LANGUAGES.find((l) => l === line?.[1])
  if (line === null || language === undefined || (kernel !== "sage" && language !== "html")) return { code: text }
  return { code: text.slice(line[0].length), language }
}

/**
 * The cell's code as one that names its language itself, for a link that keeps only code and kernel (a permalink): a
 * cell in GAP, GP, … or HTML gets the `%%gap`-style first line Sage's shell (and IPython, for `%%html`) runs it by. A
 * Python cell in a Sage kernel has no such line and goes as it is.
 */
export const selfNaming = (code: string, language: Language | undefined, kernel: KernelKind): string =>
  language === undefined || language === kernel || kernelReads(language) ? code : `%%${language}\n${code}`
