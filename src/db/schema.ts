// The database schema as an ordered list of migrations; append new ones, never edit an applied one.

export interface Migration {
  /** strictly increasing; recorded in schema_migrations once applied */
  readonly version: number
  readonly name: string
  readonly sql: string
}

export const MIGRATIONS: ReadonlyArray<Migration> = [
  {
    version: 1,
    name: "log",
    sql: `
      CREATE TABLE log (
        id bigserial PRIMARY KEY,
        host text NOT NULL,
        component text NOT NULL,
        pid int,
        ts timestamptz NOT NULL,
        level text NOT NULL,
        msg text NOT NULL
      );
      CREATE INDEX log_ts ON log (ts);
      CREATE INDEX log_component_ts ON log (component, ts);
      -- logwatch's read position per file, committed in the same transaction as the rows it read;
      -- keyed by inode so that a renamed (rotated) file keeps its offset
      CREATE TABLE log_offsets (
        host text NOT NULL,
        inode bigint NOT NULL,
        file text NOT NULL,
        "offset" bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (host, inode)
      );`,
  },
  {
    version: 2,
    name: "registry",
    sql: `
      CREATE TABLE accounts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        email text NOT NULL UNIQUE,
        name text,
        password_hash text,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      -- workers register and heartbeat here, so backends on any host can find them
      CREATE TABLE workers (
        id text PRIMARY KEY,
        host text NOT NULL,
        port int NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX workers_heartbeat_at ON workers (heartbeat_at);
      -- which worker holds which session, so any backend can route to it
      CREATE TABLE sessions (
        id text PRIMARY KEY,
        worker_id text REFERENCES workers (id) ON DELETE SET NULL,
        kernel text NOT NULL,
        owner uuid REFERENCES accounts (id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        ended_at timestamptz,
        end_reason text
      );
      CREATE INDEX sessions_live ON sessions (worker_id) WHERE ended_at IS NULL;`,
  },
]
