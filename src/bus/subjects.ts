/**
 * The one place bus subjects are built. Site actors live under
 * `sugar.<site>.<actor>.<op>`, the keyring (shared by a district) under
 * `sugar.keyring.<op>`, events under `sugar.<site>.events.<kind>`, and what
 * the district shares (schemas/district.proto) under `sugar.district.<op>`,
 * `sugar.district.from.<site>.<op>` and `sugar.district.events.<kind>`.
 * The sites `district` and `keyring` are reserved: their site subjects would
 * be the district's and the keyring's.
 */
import { SugarError } from "../errors.js";

export type SiteActor = "registry" | "backup" | "lease" | "auth";
export type EventKind = "registered" | "removed" | "reflash_pending" | "reflash_approved" | "reflash_rejected" | "login" | "stolen" | "backup" | "activation" | "keyring_error" | "renewal";
export type DistrictEventKind = "stolen" | "directory";
/** Site names that would collide with the keyring's and the district's subjects. */
export const RESERVED_SITES: ReadonlySet<string> = new Set(["district", "keyring"]);

const TOKEN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** A subject token: lower-case letters, digits, `_` and `-`; no dots or wildcards. */
function checkToken(kind: string, token: string): string {
  if (!TOKEN.test(token)) throw new SugarError("invalid_input", `${kind} "${token}" must match ${TOKEN.source}`);
  return token;
}

/**
 * An op travels in the subject under its name in the .proto (`claim_code`),
 * while the generated code names the oneof case in camelCase (`claimCode`):
 * subject tokens stay lower-case, as NATS permissions spell them.
 */
const snakeOp = (op: string) => op.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
/** A token with upper case is no op's subject (`claimCode` must travel as `claim_code`): it names none. */
const camelOp = (token: string) => (/[A-Z]/.test(token) ? "" : token.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()));

export const subjects = {
  /** `op` as the generated code names it (`claimCode`) or as the .proto does (`claim_code`). */
  actor(site: string, actor: SiteActor, op: string): string {
    return `sugar.${checkToken("site", site)}.${actor}.${checkToken("op", snakeOp(op))}`;
  },
  /** Every op of a site actor: what the actor serves. */
  actorAll(site: string, actor: SiteActor): string {
    return `sugar.${checkToken("site", site)}.${actor}.*`;
  },
  keyring(op: string): string {
    return `sugar.keyring.${checkToken("op", snakeOp(op))}`;
  },
  keyringAll(): string {
    return "sugar.keyring.*";
  },
  /** A district CA op for one school: the site is who asks (the hub exports each school's subject to it alone). */
  keyringFor(site: string, op: string): string {
    return `sugar.keyring.${checkToken("site", site)}.${checkToken("op", snakeOp(op))}`;
  },
  /** Every school's CA ops: what the keyring serves beside keyringAll. */
  keyringForAll(): string {
    return "sugar.keyring.*.*";
  },
  /** The site of a keyringFor subject, or "" for a keyringAll one. */
  keyringSiteOf(subject: string): string {
    const t = subject.split(".");
    return t.length === 4 && t[0] === "sugar" && t[1] === "keyring" ? t[2]! : "";
  },
  /** A district op any school may ask (stolen_list, lookup). */
  district(op: string): string {
    return `sugar.district.${checkToken("op", snakeOp(op))}`;
  },
  /** A district op on behalf of one school (stolen, directory): the hub exports each school's subject to it alone. */
  districtFrom(site: string, op: string): string {
    return `sugar.district.from.${checkToken("site", site)}.${checkToken("op", snakeOp(op))}`;
  },
  /** What the district actor serves: both kinds of op. */
  districtAll(): string {
    return "sugar.district.*";
  },
  districtFromAll(): string {
    return "sugar.district.from.*.*";
  },
  /** The site of a districtFrom subject, or "" for any other. */
  districtSiteOf(subject: string): string {
    const t = subject.split(".");
    return t.length === 5 && t[0] === "sugar" && t[1] === "district" && t[2] === "from" ? t[3]! : "";
  },
  districtEvent(kind: DistrictEventKind): string {
    return `sugar.district.events.${kind}`;
  },
  event(site: string, kind: EventKind): string {
    return `sugar.${checkToken("site", site)}.events.${kind}`;
  },
  /** The op of an actor subject (its last token), as the generated code names it: `claim_code` → `claimCode`. */
  opOf(subject: string): string {
    return camelOp(subject.slice(subject.lastIndexOf(".") + 1));
  },
};

/** NATS subject matching: `*` matches one token, a final `>` one or more. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return i === p.length - 1 && s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

/** A subject that may be published or requested: non-empty tokens, no wildcards, no spaces. */
export function isConcreteSubject(subject: string): boolean {
  return subject.length > 0 && subject.split(".").every((t) => t.length > 0 && t !== "*" && t !== ">" && !/\s/.test(t));
}
