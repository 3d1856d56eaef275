// The source address admission counts by. Behind haproxy the peer is haproxy itself; the browser's address is the
// last X-Forwarded-For entry, the one haproxy appended. Earlier entries were written by the caller and mean nothing.
import { isIP } from "node:net"

/** A peer on this host: haproxy (or a test, or anything else local, which is trusted to say who it forwards). */
const isLoopback = (address: string): boolean => address === "::1" || /^127\./.test(address)

const expandIPv6 = (address: string): Array<string> | undefined => {
  const [head = "", tail, extra] = address.split("::")
  if (extra !== undefined) return undefined
  const left = head === "" ? [] : head.split(":")
  const right = tail === undefined || tail === "" ? [] : tail.split(":")
  const missing = 8 - left.length - right.length
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined
  return [...left, ...Array<string>(tail === undefined ? 0 : missing).fill("0"), ...right].map((g) => g.padStart(4, "0").toLowerCase())
}

/**
 * One key per address: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4), IPv6 by its /64 prefix, since one
 * host is given a whole /64 and could otherwise count as 2^64 addresses.
 */
export const normalizeAddress = (address: string): string => {
  const bare = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "")
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)
  if (mapped?.[1] !== undefined) return mapped[1]
  if (isIP(bare) !== 6 || bare.includes(".")) return bare
  const groups = expandIPv6(bare)
  return groups === undefined ? bare : `${groups.slice(0, 4).join(":")}::/64`
}

/**
 * The address of whoever opened this connection or sent this request: the peer's, or for a peer on this host the
 * last valid X-Forwarded-For entry (Node joins repeated headers with ", ").
 */
export const sourceAddress = (peer: string | undefined, forwarded: string | ReadonlyArray<string> | undefined): string => {
  const from = normalizeAddress(peer ?? "unknown")
  if (!(isLoopback(peer ?? "") || isLoopback(from)) || forwarded === undefined) return from
  const entries = (typeof forwarded === "string" ? forwarded : forwarded.join(",")).split(",").map((e) => e.trim())
  const last = entries[entries.length - 1] ?? ""
  return isIP(last) !== 0 ? normalizeAddress(last) : from
}
