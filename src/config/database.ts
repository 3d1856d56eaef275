// Where the PostgreSQL of this stack is: the cluster sagews owns, or the operator's external URL.
import type { Config } from "./schema.ts"

export const databaseUrl = (config: Pick<Config, "postgres">): string =>
  config.postgres.url || `postgres://postgres@127.0.0.1:${config.postgres.port}/sagews`
