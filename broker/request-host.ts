/*
 * Which `Host` a metadata request may name: only names no outsider can own, against DNS rebinding,
 * read with the WHATWG URL parser as a browser reads them.
 * Why: docs/metadata-server.md#checks-on-every-request
 */

/** Names a Google SDK may use for the metadata server (GCE's own, and where GCE_METADATA_HOST points). */
const metadataNames = ["localhost", "metadata.google.internal", "metadata"] as const;

/** Loopback: 127.0.0.0/8, ::1, and IPv4-mapped 127/8 (`::ffff:7f00:1` as the URL parser writes it). */
function isLoopbackHostname(hostname: string): boolean {
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)) return true;
  return hostname === "[::1]" || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(hostname);
}

/**
 * The canonical host name of `host[:port]` (a `Host` header, or a configured address, IPv6 in
 * brackets), lower-cased, without the port and without a trailing dot; `undefined` if it is not a
 * host at all (user info, a path, a bad port).
 */
export function canonicalHost(text: string): string | undefined {
  // Only what a host and port may hold: URL would otherwise read `a@b` or `a/b` as more than a host.
  if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:\d{0,5})?$/.test(text)) return undefined;
  try {
    return new URL(`http://${text}/`).hostname.replace(/\.$/, "");
  } catch {
    return undefined;
  }
}

/** A configured listen address (`BROKER_HOST`: IPv6 without brackets) in `canonicalHost` form. */
export function canonicalAddress(address: string): string | undefined {
  return canonicalHost(address.includes(":") ? `[${address}]` : address);
}

/** Whether a configured listen address is loopback, so that only this machine can connect. */
export function isLoopbackAddress(address: string): boolean {
  const host = canonicalAddress(address);
  return host !== undefined && (host === "localhost" || isLoopbackHostname(host));
}

/** How many distinct `Host` values keep their verdict; clients send one or two. */
const memoSize = 64;

/**
 * A check of the `Host` header for a listener on `listenHost` that also answers `extraHosts`
 * (each `host[:port]`). A missing or repeated header is refused too: every HTTP/1.1 client sends
 * exactly one.
 */
export function hostAllowList(
  listenHost: string,
  extraHosts: readonly string[] = [],
): (hostHeaders: readonly string[]) => boolean {
  const allowed = new Set<string>(metadataNames);
  for (const host of [canonicalAddress(listenHost), ...extraHosts.map(canonicalHost)]) {
    if (host !== undefined) allowed.add(host);
  }
  const memo = new Map<string, boolean>();
  const verdict = (header: string): boolean => {
    const known = memo.get(header);
    if (known !== undefined) return known;
    const host = canonicalHost(header);
    const ok = host !== undefined && (allowed.has(host) || isLoopbackHostname(host));
    if (memo.size < memoSize) memo.set(header, ok);
    return ok;
  };
  return (hostHeaders) => hostHeaders.length === 1 && verdict(hostHeaders[0] ?? "");
}
