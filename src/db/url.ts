// Database URLs: the cluster sagews owns (loopback, a role and its password) or an external one, and how a URL
// travels to a child process without its password on the command line.

/** The database that holds everything sagews stores. */
export const DATABASE = "sagews"

/** The cluster that sagews owns, on 127.0.0.1 (scram-sha-256: the password is required). */
export const localUrl = (
  port: number,
  role: { readonly user: string; readonly password: string },
  database: string = DATABASE,
): string => {
  const url = new URL(`postgres://127.0.0.1:${port}/${encodeURIComponent(database)}`)
  url.username = encodeURIComponent(role.user)
  url.password = encodeURIComponent(role.password)
  return url.toString()
}

/** The same server and credentials, another database (e.g. `postgres`, to create `sagews`). */
export const withDatabase = (url: string, database: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** The database name a URL points at. */
export const databaseOf = (url: string): string => decodeURIComponent(new URL(url).pathname.replace(/^\//, "")) || DATABASE

/**
 * A URL for a child's command line and the password it held, for the child's environment (PGPASSWORD, which
 * the `pg` client and psql read when the URL has none): /proc/<pid>/cmdline is world-readable, environ is not.
 */
export const splitPassword = (url: string): { readonly url: string; readonly password: string | undefined } => {
  const parsed = new URL(url)
  const password = parsed.password === "" ? undefined : decodeURIComponent(parsed.password)
  parsed.password = ""
  return { url: parsed.toString(), password }
}
