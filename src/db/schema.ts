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
  {
    version: 3,
    name: "shared admission",
    sql: `
      -- whom admission counts a session for (a server-issued client identity, a source address), and the backend
      -- whose worker link the session's output goes to (NULL: none, e.g. its backend stopped)
      ALTER TABLE sessions ADD COLUMN IF NOT EXISTS client text;
      ALTER TABLE sessions ADD COLUMN IF NOT EXISTS address text;
      ALTER TABLE sessions ADD COLUMN IF NOT EXISTS backend text;
      CREATE INDEX IF NOT EXISTS sessions_live_client ON sessions (client) WHERE ended_at IS NULL;
      CREATE INDEX IF NOT EXISTS sessions_live_address ON sessions (address) WHERE ended_at IS NULL;
      -- each running backend's heartbeat: the sessions of a backend that stopped beating are taken over by another
      CREATE TABLE IF NOT EXISTS backends (
        id text PRIMARY KEY,
        seen_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
  {
    version: 4,
    name: "accounts",
    sql: `
      -- emails are stored lowercased; an account without password_hash signs in only through a provider (later)
      ALTER TABLE accounts ADD COLUMN IF NOT EXISTS disabled_at timestamptz;
      ALTER TABLE accounts ADD COLUMN IF NOT EXISTS last_sign_in_at timestamptz;
      -- web sign-in sessions: the cookie carries the id, this table only its SHA-256, so a copy of the table
      -- signs nobody in; ended_at is set by sign-out (and for every session of an account that is disabled)
      CREATE TABLE IF NOT EXISTS web_sessions (
        id_hash text PRIMARY KEY,
        account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        address text,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        ended_at timestamptz
      );
      CREATE INDEX IF NOT EXISTS web_sessions_account ON web_sessions (account_id) WHERE ended_at IS NULL;
      -- API tokens (sagews user token EMAIL), stored as their SHA-256: shown once, never again
      CREATE TABLE IF NOT EXISTS api_tokens (
        token_hash text PRIMARY KEY,
        account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL,
        last_used_at timestamptz,
        revoked_at timestamptz
      );
      CREATE INDEX IF NOT EXISTS api_tokens_account ON api_tokens (account_id);
      -- failed sign-ins by key ('email:<email>', 'address:<address>'), shared by every backend: the rate limit's
      -- sliding window; rows older than the window are deleted as new ones come
      CREATE TABLE IF NOT EXISTS sign_in_failures (
        key text NOT NULL,
        at timestamptz NOT NULL
      );
      CREATE INDEX IF NOT EXISTS sign_in_failures_key_at ON sign_in_failures (key, at);`,
  },
  {
    version: 5,
    name: "workspaces",
    sql: `
      -- a workspace is a git repository (src/workspace/); its head version is the truth a save moves, with a check
      -- that it is still the one the save started from
      CREATE TABLE IF NOT EXISTS workspaces (
        id text PRIMARY KEY,
        owner uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        head text NOT NULL,
        -- the sequence number of the head's bundle, and how many increments follow the last full bundle
        seq int NOT NULL,
        chain int NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX IF NOT EXISTS workspaces_owner ON workspaces (owner);
      -- the bundles a restore fetches in order: the last full one, then the increments after it
      CREATE TABLE IF NOT EXISTS workspace_bundles (
        workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
        seq int NOT NULL,
        head text NOT NULL,
        complete boolean NOT NULL,
        bundle bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (workspace_id, seq)
      );
      CREATE INDEX IF NOT EXISTS workspace_bundles_head ON workspace_bundles (workspace_id, head);
      -- bundles are zlib-compressed packs already: keep PostgreSQL from compressing them again
      ALTER TABLE workspace_bundles ALTER COLUMN bundle SET STORAGE EXTERNAL;`,
  },
  {
    version: 6,
    name: "worksheets",
    sql: `
      -- a worksheet is the file path (worksheets/<id>.ipynb) in its owner's workspace (src/worksheets/); version is
      -- the commit of its latest save, which a save checks and moves under this row's lock; a deleted worksheet keeps
      -- its row (deleted_at) and its file's history, and is never listed, read or saved again
      CREATE TABLE IF NOT EXISTS worksheets (
        id text PRIMARY KEY,
        owner uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
        path text NOT NULL,
        title text NOT NULL,
        version text NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        deleted_at timestamptz
      );
      CREATE INDEX IF NOT EXISTS worksheets_owner ON worksheets (owner, updated_at DESC) WHERE deleted_at IS NULL;`,
  },
  {
    version: 7,
    name: "publishing",
    sql: `
      -- a published worksheet: its static HTML is under nginx's /pub/<slug>/ (the slug is the worksheet's for good),
      -- rendered from the version named here; unpublishing clears published_at and removes the files
      ALTER TABLE worksheets ADD COLUMN IF NOT EXISTS published_slug text UNIQUE;
      ALTER TABLE worksheets ADD COLUMN IF NOT EXISTS published_version text;
      ALTER TABLE worksheets ADD COLUMN IF NOT EXISTS published_at timestamptz;`,
  },
  {
    version: 8,
    name: "external identities",
    sql: `
      -- an account's sign-ins through an OpenID Connect or OAuth 2 provider: the provider's issuer (or preset name)
      -- and its subject identify the person; the email is what the provider said last
      CREATE TABLE IF NOT EXISTS account_identities (
        issuer text NOT NULL,
        subject text NOT NULL,
        account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        email text,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_sign_in_at timestamptz,
        PRIMARY KEY (issuer, subject)
      );
      CREATE INDEX IF NOT EXISTS account_identities_account ON account_identities (account_id);`,
  },
  {
    version: 9,
    name: "permalinks and share links",
    sql: `
      -- a worksheet's read-only share link: whoever holds the token reads its latest version; one token per worksheet,
      -- kept until the owner revokes it (NULL), after which sharing again makes a new one
      ALTER TABLE worksheets ADD COLUMN IF NOT EXISTS share_token text UNIQUE;
      ALTER TABLE worksheets ADD COLUMN IF NOT EXISTS shared_at timestamptz;
      -- ?q= permalinks: code and kernel under a short id derived from them (src/backend/permalinks.ts), so the same
      -- code and kernel are one row; rows are never changed or deleted
      CREATE TABLE IF NOT EXISTS permalinks (
        q text PRIMARY KEY,
        code text NOT NULL,
        kernel text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      -- new permalinks by source address, shared by every backend: the rate limit's sliding window; rows older than
      -- the window are deleted as the address makes new ones
      CREATE TABLE IF NOT EXISTS permalink_creations (
        address text NOT NULL,
        at timestamptz NOT NULL
      );
      CREATE INDEX IF NOT EXISTS permalink_creations_address_at ON permalink_creations (address, at);`,
  },
  {
    version: 10,
    name: "cluster registry",
    sql: `
      -- a worker registers itself (src/worker/registration.ts): where backends reach it (address host:port, over TLS
      -- when tls), what it runs ([{kind, version}]), how many sessions it takes and holds, with a heartbeat; stopped_at
      -- when it stopped cleanly, lost_at when a backend declared its host lost (its sessions then ended WorkerLost)
      ALTER TABLE workers ADD COLUMN IF NOT EXISTS address text;
      ALTER TABLE workers ADD COLUMN IF NOT EXISTS tls boolean NOT NULL DEFAULT false;
      ALTER TABLE workers ADD COLUMN IF NOT EXISTS kernels jsonb NOT NULL DEFAULT '[]';
      ALTER TABLE workers ADD COLUMN IF NOT EXISTS capacity int;
      ALTER TABLE workers ADD COLUMN IF NOT EXISTS sessions int NOT NULL DEFAULT 0;
      ALTER TABLE workers ADD COLUMN IF NOT EXISTS stopped_at timestamptz;
      ALTER TABLE workers ADD COLUMN IF NOT EXISTS lost_at timestamptz;
      -- a backend says where haproxies on other hosts reach it (host:port), and when it stopped cleanly
      ALTER TABLE backends ADD COLUMN IF NOT EXISTS host text;
      ALTER TABLE backends ADD COLUMN IF NOT EXISTS address text;
      ALTER TABLE backends ADD COLUMN IF NOT EXISTS stopped_at timestamptz;`,
  },
  {
    version: 11,
    name: "join tokens",
    sql: `
      -- \`sagews join-token\` (src/cluster/tokens.ts): one row per token, holding only what revoking needs; the
      -- token's password is printed once and never stored (PostgreSQL keeps its SCRAM verifier for the login role)
      CREATE TABLE IF NOT EXISTS join_tokens (
        id text PRIMARY KEY,
        role text NOT NULL CHECK (role IN ('worker', 'web')),
        pg_role text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        used_at timestamptz,
        used_by text,
        revoked_at timestamptz
      );
      -- a joining host's certificate request (kubelet's TLS bootstrap): it sends a CSR for its own key, the store's
      -- signer (src/cluster/signer.ts) answers with a certificate from the CA, or says why not; the CA key never moves.
      -- pg_role is the requester's login role, set by PostgreSQL (current_user) and never by the requester.
      CREATE TABLE IF NOT EXISTS cert_requests (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        pg_role text NOT NULL DEFAULT current_user,
        host text NOT NULL,
        address text NOT NULL,
        csr text NOT NULL,
        client_addr inet DEFAULT inet_client_addr(),
        created_at timestamptz NOT NULL DEFAULT now(),
        cert text,
        refused text,
        answered_at timestamptz
      );
      CREATE INDEX IF NOT EXISTS cert_requests_pending ON cert_requests (created_at) WHERE answered_at IS NULL;
      -- each join role sees and makes only its own requests; the service role (the signer) sees all
      ALTER TABLE cert_requests ENABLE ROW LEVEL SECURITY;
      CREATE POLICY cert_requests_own ON cert_requests
        USING (pg_role = current_user OR current_user = 'sagews')
        WITH CHECK (pg_role = current_user OR current_user = 'sagews');
      CREATE OR REPLACE FUNCTION cert_requests_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify(CASE WHEN TG_OP = 'INSERT' THEN 'sagews_cert_requested' ELSE 'sagews_cert_answered' END, NEW.id::text);
        RETURN NEW;
      END $$;
      CREATE TRIGGER cert_requests_notify AFTER INSERT OR UPDATE OF answered_at ON cert_requests
        FOR EACH ROW EXECUTE FUNCTION cert_requests_notify();`,
  },
]
