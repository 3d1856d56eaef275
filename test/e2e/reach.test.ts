// From inside a real session of a whole tree, the back end is out of reach: PostgreSQL and memcached (their
// sockets and ports), the backends, the worker and the data directory with its secrets. Two sessions, as an
// attacker would run them: a stateless cell through the front door and a kept one beside it.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeStack, type Stack } from "./stack.ts"

interface Reply {
  readonly status: string
  readonly outputs: ReadonlyArray<{ readonly kind: string; readonly text?: string }>
}

const probe = (stack: Stack): string => {
  // the tree's ports: PostgreSQL, the front door, nginx, the first backend and worker (base ports, one of each here)
  const ports = [stack.ports["postgres"], stack.port, stack.ports["nginx"], stack.ports["backends"], stack.ports["workers"]]
  return [
    "import os, socket",
    "def tcp(port):",
    "    try:",
    "        socket.create_connection(('127.0.0.1', port), timeout=2); return 'connected'",
    "    except OSError as e: return type(e).__name__",
    "def unix(path):",
    "    try:",
    "        socket.socket(socket.AF_UNIX).connect(path); return 'connected'",
    "    except OSError as e: return type(e).__name__",
    `data = ${JSON.stringify(stack.dataDir)}`,
    // the attack of issue 7 found the socket's path in another process's command line
    "sockets = [p for p in os.listdir('/proc') if p.isdigit() and any(w in open(f'/proc/{p}/cmdline', 'rb').read() for w in (b'postgres', b'memcached', b'PGSQL'))]",
    `print({'data': os.listdir(data) if os.path.exists(data) else [], 'sockets': sockets, 'pg': unix(data + '/run/pg/.s.PGSQL.${stack.ports.postgres}'),`,
    "       'memcached': unix(data + '/run/memcached/memcached.sock'),",
    `       'tcp': sorted(set(tcp(p) for p in ${JSON.stringify(ports)}))})`,
  ].join("\n")
}

describe("the back end from inside a session", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await makeStack({ backends: 1 })
    await stack.startForeground()
  })
  afterAll(async () => {
    await stack.cleanup()
    expect(stack.processes()).toEqual([])
  })

  it("PostgreSQL, memcached, the backends, the worker and the data directory are out of reach", async () => {
    const run = async (): Promise<string> => {
      const response = await fetch(`${stack.url}/api/v1/execute`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ kernel: "python", code: probe(stack), cache: false }),
      })
      const reply = (await response.json()) as Reply
      return reply.outputs.map((o) => o.text ?? "").join("")
    }
    const [first, second] = await Promise.all([run(), run()])
    for (const seen of [first, second]) {
      expect(seen).toContain("'data': []")
      expect(seen).toContain("'sockets': []")
      expect(seen).toContain("'pg': 'FileNotFoundError'")
      expect(seen).toContain("'memcached': 'FileNotFoundError'")
      expect(seen).toContain("'tcp': ['OSError']")
    }
  })
})
