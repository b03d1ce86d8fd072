/**
 * Where /auth/login may send a browser back to (`rd`): a path on this
 * server, or an http(s) URL whose host (compared without the port) is one of
 * this server's own names or one the admin listed in `auth-redirect-hosts`.
 * Anything else — another host, `javascript:`, `//evil`, `\\evil`, user
 * info, control characters — is refused, so the login page cannot be used
 * to bounce a child to another site. A link-local IPv6 address (fe80::/10)
 * is never a host to send a browser to, even when a request's Host header
 * names one: it means something only on one network link.
 */
import { isLinkLocal } from "../../src/config.js";

const MAX_RD = 2048;

/** The redirect target as given when it is allowed; undefined when it is not. */
export function allowedRedirect(rd: string, hosts: ReadonlySet<string>): string | undefined {
  if (rd.length === 0 || rd.length > MAX_RD) return undefined;
  // Browsers treat "\" as "/" and drop tabs and newlines: such a value is never what it looks like.
  if (/[\u0000-\u001f\u007f\\\s]/.test(rd)) return undefined;
  if (rd.startsWith("/")) return rd.startsWith("//") ? undefined : rd;
  let url: URL;
  try {
    url = new URL(rd);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  if (url.username || url.password) return undefined;
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, "");
  return hosts.has(host) && !isLinkLocal(host) ? url.href : undefined;
}

/** The host names a redirect may name: this server's and the configured ones, lower-cased, without ports. */
export function redirectHosts(own: readonly string[], configured: string): Set<string> {
  const names = [...own, ...configured.split(",")].map((h) => h.trim().toLowerCase().replace(/:\d+$/, "").replace(/^\[|\]$/g, "")).filter((h) => h && !isLinkLocal(h));
  return new Set(names);
}
