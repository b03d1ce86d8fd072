/**
 * Which DNS names a school may have in its certificates: the keyring host's
 * `ca-server-names`, patterns whose `{site}` is the asking school's site (as
 * its subject names it) and whose `*` stands for exactly one label. A school
 * asks for names within its own patterns, or gets the concrete ones (no `*`).
 */
import { SugarError } from "../../../src/errors.js";

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** More names than a school server could want: a bound on work and certificate size. */
const MAX_NAMES = 32;

/** The configured patterns, trimmed, lower-case, without empties. */
export function patternsOf(option: string): string[] {
  return option.split(",").map((p) => p.trim().toLowerCase()).filter((p) => p.length > 0);
}

/** The patterns as known_hosts host patterns (`@cert-authority` lines): `{site}` matches any school, so `*`. */
export function hostPatterns(patterns: string[]): string[] {
  return [...new Set(patterns.map((p) => p.replaceAll("{site}", "*")))];
}

const isDnsName = (name: string) => name.length <= 253 && name.split(".").every((l) => LABEL.test(l));

/** The site's names that need no choosing: patterns without `*`, `{site}` filled in (a site that makes no DNS name drops the pattern). */
export function concreteNames(patterns: string[], site: string): string[] {
  return [...new Set(patterns.filter((p) => !p.split(".").includes("*")).map((p) => p.replaceAll("{site}", site)).filter(isDnsName))];
}

function matches(pattern: string, site: string, name: string): boolean {
  const p = pattern.split(".");
  const n = name.split(".");
  return p.length === n.length && p.every((label, i) => label === "*" || label.replaceAll("{site}", site) === n[i]);
}

/**
 * The names a certificate for `site` carries: `requested` (each a plain DNS
 * name within one of the site's patterns, compared without case), or, when
 * nothing is requested, the site's concrete names.
 */
export function namesFor(requested: string[], patterns: string[], site: string): string[] {
  if (requested.length === 0) {
    const names = concreteNames(patterns, site);
    if (names.length === 0) throw new SugarError("invalid_input", `ca-server-names gives ${site} no name without a wildcard: ask for the names you want`);
    return names;
  }
  if (requested.length > MAX_NAMES) throw new SugarError("invalid_input", `at most ${MAX_NAMES} names in one certificate (asked for ${requested.length})`);
  const names: string[] = [];
  for (const raw of requested) {
    const name = raw.trim().toLowerCase().replace(/\.$/, "");
    if (name.includes("*")) throw new SugarError("invalid_input", `${JSON.stringify(raw.slice(0, 80))}: the keyring signs no wildcard names; ask for each name`);
    if (!isDnsName(name)) throw new SugarError("invalid_input", `${JSON.stringify(raw.slice(0, 80))} is not a DNS host name`);
    if (!patterns.some((p) => matches(p, site, name))) {
      throw new SugarError("forbidden", `${name} is not a name ${site} may have (ca-server-names: ${patterns.map((p) => p.replaceAll("{site}", site)).join(", ")})`);
    }
    if (!names.includes(name)) names.push(name);
  }
  return names;
}
