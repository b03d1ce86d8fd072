/**
 * The one admin-path rule: `/admin`, `/admin/…`, `/metrics`, `/metrics/…`
 * and `/api/admin`, `/api/admin/…` answer 403 unless the request is an
 * admin's, on every port, checked by the listener before any handler is
 * asked — so a route added under these paths is guarded whether or not
 * anyone remembers to guard it, and a path no handler serves is 403 to a
 * non-admin too.
 *
 * An admin's request is one the auth actor names (a browser session or
 * device cookie, token headers, a verified client certificate) at any level
 * but "xoid" (an xoid identifies, it proves nothing), of a uid whose
 * registry user has `admin`.
 *
 * The path is read as strictly as any handler or proxy might read it:
 * percent-escapes decoded, backslashes as slashes, repeated slashes and dot
 * segments collapsed, case ignored; a target that cannot be decoded counts
 * as an admin path (closed, not open).
 */
import { posix } from "node:path";
import type { RegistryClient } from "../../src/codec.js";
import { SugarError } from "../../src/errors.js";
import type { RequestIdentity } from "./identify.js";

const ADMIN_TREES = ["/admin", "/metrics", "/api/admin"] as const;

/** The path part of a request target: absolute-form (`http://host/admin`) and origin-form alike. */
function rawPath(target: string): string {
  const cut = target.search(/[?#]/);
  const path = cut < 0 ? target : target.slice(0, cut);
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(path);
  return scheme ? path.slice(scheme[0].length) || "/" : path;
}

/**
 * Refuses a request target whose path is not canonical: a backslash, an
 * empty segment (`//`), a `.` or `..` segment, or an escaped `/`, `\` or
 * `.`. Clients never need them, and each is a place where two readers of a
 * path (the router's URL parser, this rule, a proxy in front) could
 * disagree on which route a request is for. Checked before any routing, so
 * the router and the admin rule read the same path.
 */
export function checkCanonical(target: string): void {
  const path = rawPath(target);
  const segments = path.split("/").slice(1);
  if (/\\|%2f|%5c|%2e/i.test(path) || segments.slice(0, -1).includes("") || segments.some((s) => s === "." || s === "..")) {
    throw new SugarError("invalid_input", "the request path is not in canonical form (no //, dot segments, backslashes or escaped separators)");
  }
}

/** True when the request target is under an admin path. */
export function isAdminPath(target: string): boolean {
  let path: string;
  try {
    path = decodeURIComponent(rawPath(target));
  } catch {
    return true; // a malformed escape: whatever it hides, it is not let past
  }
  const p = posix.normalize(`/${path.replace(/\\/g, "/")}`).toLowerCase();
  return ADMIN_TREES.some((tree) => p === tree || p.startsWith(`${tree}/`) || p.startsWith(`${tree};`));
}

export interface AdminRule {
  /** Resolves when the request may reach `target`; rejects with `forbidden` when the target is an admin path and the request is not an admin's. */
  check(target: string, who: RequestIdentity): Promise<void>;
}

export function adminRule(registry: RegistryClient): AdminRule {
  const refuse = () => new SugarError("forbidden", "this path is for the school server's admins: log in as one");
  return {
    async check(target, who) {
      if (!isAdminPath(target)) return;
      const id = await who.browser();
      if (!id || id.level === "xoid") throw refuse();
      let admin: boolean;
      try {
        admin = !!(await registry.call("lookup", { uid: id.uid })).user?.admin;
      } catch (err) {
        if (err instanceof SugarError && err.code === "not_registered") throw refuse();
        throw err;
      }
      if (!admin) throw refuse();
    },
  };
}
