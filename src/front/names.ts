// How a backend of the registry (`backend:1@web2` at `10.0.0.2:8081`) is named in a haproxy: a server name that
// haproxy accepts and that no static server can have, a numeric server id that is the same on every haproxy, and an
// address haproxy can use without resolving it.
import { isIP } from "node:net"

/** Every server this prefix starts is a remote backend added at run time; static servers may not use it. */
export const DYNAMIC_PREFIX = "dyn_"

/** haproxy's server names: letters, digits and `_.:-` (2.6 refuses anything else, e.g. `@`). */
const KEPT = /[A-Za-z0-9.:-]/

/**
 * The dynamic server name of a backend id: kept characters as they are, any other (`_` included) as `_` and its
 * UTF-8 bytes in hex, so two ids never share a name: `backend:1@web2` is `dyn_backend:1_40web2`.
 */
export const dynamicServerName = (backendId: string): string => {
  let name = DYNAMIC_PREFIX
  for (const ch of backendId) {
    name += KEPT.test(ch) ? ch : Array.from(Buffer.from(ch, "utf8"), (b) => `_${b.toString(16).padStart(2, "0")}`).join("")
  }
  return name
}

/** Ids below this are left to haproxy's own numbering of servers that are given none. */
const FIRST_HASHED_ID = 1_000
/** haproxy's server ids are positive 32-bit ints. */
const LAST_ID = 2 ** 31 - 1

/**
 * haproxy's numeric server id for a backend id (FNV-1a): a consistent hash places a server on its ring by this id,
 * so haproxies that give every backend the same id send one SockJS session to one backend, whichever took it.
 */
export const serverIdOf = (backendId: string): number => {
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(backendId, "utf8")) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0
  return FIRST_HASHED_ID + (hash % (LAST_ID - FIRST_HASHED_ID + 1))
}

export interface ServerAddress {
  /** an IPv4 or IPv6 address, without brackets */
  readonly host: string
  readonly port: number
}

/**
 * `host:port` (IPv6 in brackets) as the registry's `address` holds it; an error names the value. haproxy 2.6
 * does not resolve the name of a server added at run time, so a host name is refused here.
 */
export const parseAddress = (address: string): ServerAddress | string => {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address)
  const host = m?.[1] ?? m?.[2]
  const port = Number(m?.[3])
  if (m === null || host === undefined) return `address ${JSON.stringify(address)} is not host:port (IPv6 as [addr]:port)`
  if (isIP(host) === 0) {
    return `address ${JSON.stringify(address)}: ${JSON.stringify(host)} is not an IP address (haproxy 2.6 resolves no name of a server added at run time)`
  }
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return `address ${JSON.stringify(address)}: port ${m[3]} is not a TCP port (1-65535)`
  return { host, port }
}

/** The address as haproxy's `add server` takes it. */
export const formatAddress = ({ host, port }: ServerAddress): string => (isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`)
