// A worksheet on the wire: a Jupyter notebook of nbformat 4 (any 4.x minor), checked as nbformat's own JSON schema
// does at the points a client can get wrong (the notebook's and cells' fields, cell types, sources, code cells'
// outputs and execution counts); outputs' and metadata's insides are passed through as nbformat keeps them.
import { z } from "zod"

/** Longest title (`metadata.title`), in characters: it is shown in lists, not a document. */
export const MAX_TITLE_CHARS = 200
/** The title of a worksheet whose notebook has no `metadata.title`. */
export const UNTITLED = "Untitled"

/** nbformat's multiline string: one string, or lines to be joined */
const Source = z.union([z.string(), z.array(z.string())], { error: "must be a string or an array of strings" })
const Metadata = z.record(z.string(), z.unknown(), { error: "must be an object" })
/** nbformat 4.5's cell id */
const CellId = z.string().regex(/^[a-zA-Z0-9-_]{1,64}$/, "must be 1 to 64 letters, digits, '-' or '_'")

const Output = z.looseObject({
  output_type: z.enum(["execute_result", "display_data", "stream", "error"], { error: "must be execute_result, display_data, stream or error" }),
})

const CodeCell = z.strictObject({
  id: CellId.optional(),
  cell_type: z.literal("code"),
  metadata: Metadata,
  source: Source,
  outputs: z.array(Output, { error: "must be an array of outputs" }),
  execution_count: z.number().int().nonnegative().nullable(),
})

const MarkdownCell = z.strictObject({
  id: CellId.optional(),
  cell_type: z.literal("markdown"),
  metadata: Metadata,
  source: Source,
  attachments: Metadata.optional(),
})

const RawCell = z.strictObject({
  id: CellId.optional(),
  cell_type: z.literal("raw"),
  metadata: Metadata,
  source: Source,
  attachments: Metadata.optional(),
})

const Cell = z.discriminatedUnion("cell_type", [CodeCell, MarkdownCell, RawCell], { error: "must be \"code\", \"markdown\" or \"raw\"" })

/** An nbformat-4 notebook; the worksheet's title is `metadata.title`. */
export const Notebook = z.strictObject({
  nbformat: z.literal(4, { error: "must be 4 (sagews keeps nbformat 4 notebooks; convert older ones with `jupyter nbconvert --to notebook`)" }),
  nbformat_minor: z.number().int().nonnegative(),
  metadata: z.looseObject({ title: z.string().min(1).max(MAX_TITLE_CHARS).optional() }),
  cells: z.array(Cell),
})

export type Notebook = z.infer<typeof Notebook>

/** The worksheet's title: `metadata.title`, or UNTITLED. */
export const titleOf = (notebook: Notebook): string => notebook.metadata.title ?? UNTITLED
