// Where sagews finds its PostgreSQL: the cluster it owns (trust auth on loopback) or an external URL.

/** The database that holds everything sagews stores. */
export const DATABASE = "sagews"

/** The cluster that sagews owns: user `postgres`, trust auth, loopback only. */
export const localUrl = (port: number, database: string = DATABASE): string =>
  `postgres://postgres@127.0.0.1:${port}/${database}`

/** The external `postgres.url` when the config has one, else the local cluster on `port`. */
export const databaseUrl = (options: { readonly port: number; readonly url?: string | undefined }): string =>
  options.url ?? localUrl(options.port)

/** The same server and credentials, another database (e.g. `postgres`, to create `sagews`). */
export const withDatabase = (url: string, database: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** The database name a URL points at. */
export const databaseOf = (url: string): string => decodeURIComponent(new URL(url).pathname.replace(/^\//, "")) || DATABASE
