// Free TCP ports on 127.0.0.1 for the tree the harness starts: runs of consecutive ports for backends and workers.
import { createServer } from "node:net"

const portFree = (port: number): Promise<boolean> =>
  new Promise((ok) => {
    const s = createServer()
    s.once("error", () => ok(false))
    s.listen(port, "127.0.0.1", () => s.close(() => ok(true)))
  })

/** The first of `count` consecutive free ports. */
export const freePorts = async (count: number): Promise<number> => {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000)
    let all = true
    for (let i = 0; i < count && all; i++) all = await portFree(base + i)
    if (all) return base
  }
  throw new Error(`no ${count} consecutive free ports found on 127.0.0.1`)
}
