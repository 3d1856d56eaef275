// Every tunable of workspace storage, with what it limits and why that default.

/**
 * Largest file one save may write (bytes). Every version of a file stays in the repository and so in its bundles
 * in PostgreSQL forever; a worksheet with a dozen plot outputs is 1–3 MB, so 10 MiB leaves room for data files
 * while keeping a runaway save (a 500 MB array printed into a cell) out of the history.
 */
export const MAX_FILE_BYTES = 10 * 2 ** 20

/** Longest path inside a workspace (bytes of UTF-8), and of one of its segments: what ext4 and git accept. */
export const MAX_PATH_BYTES = 1_024
export const MAX_SEGMENT_BYTES = 255

/** ms one git command may take before it is killed: a save runs six of them on files of at most MAX_FILE_BYTES. */
export const GIT_TIMEOUT = 30_000

/**
 * Incremental bundles kept before a save writes a full one instead and drops the chain before it. Restoring runs
 * one `git fetch` per bundle of the chain (about 10 ms each), and a full bundle costs time and bytes that grow with
 * the history (docs/PERFORMANCE.md, "Workspaces"): 100 bounds a restore to about a second and puts one slower save
 * in every 100.
 */
export const COMPACT_EVERY = 100

/** The branch every workspace keeps its history on. */
export const BRANCH = "refs/heads/main"
