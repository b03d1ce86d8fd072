/**
 * TLS client certificates as logins. The TLS port has checked the chain to
 * the district CA and the dates; what only this actor can say is whether the
 * uid the certificate names (its subject CN) is still the one it was issued
 * to. A certificate outlives the registration it was issued for: the user
 * may be removed, or replaced by a re-flashed laptop, and the keyring keeps
 * no revocation list. So this actor remembers when each uid was removed or
 * replaced (the registry's events), under `<root>/auth/revoked/`:
 *
 *   revoked/<uid>   {"uid", "at"} (0600): the last removal or replacement
 *
 * and refuses a certificate whose notBefore is a second before that moment. A uid
 * removed and registered again (the same key) gets new certificates; the
 * old ones stay refused. The files are few (one per removed uid) and all in
 * memory, so a check reads no file.
 */
import { sugar } from "../../schemas/gen/messages.js";
import { SugarError } from "../../src/errors.js";
import { DurableDir, writingTo } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import * as validate from "../../src/validate.js";
import type { Uid } from "../../src/validate.js";

import pb = sugar.auth;

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

export class Revocations {
  private readonly at = new Map<Uid, number>();
  private readonly files: DurableDir;

  constructor(readonly dir: string) {
    this.files = new DurableDir(dir, FILE_MODE);
  }

  async open(): Promise<void> {
    for (const { name, path, text } of await this.files.open(DIR_MODE)) {
      try {
        const { uid, at } = parseRevocation(name, text);
        this.at.set(uid, at);
      } catch (err) {
        // Failing closed would need a uid to refuse, and the name may not be one: refusing to start would stop the school.
        throw new SugarError("internal", `${path} is unreadable (${(err as Error).message}); fix or delete it`, { cause: err });
      }
    }
  }

  /** Records that `uid` was removed or replaced at `now`: durable before it is in effect for later checks. */
  async revoke(uid: Uid, now: number): Promise<void> {
    await writingTo("a removed user's certificate revocation", () => this.files.write(uid, JSON.stringify({ uid, at: new Date(now).toISOString() }) + "\n"));
    this.at.set(uid, now);
  }

  /** When `uid` was last removed or replaced (ms), or undefined. */
  revokedAt(uid: Uid): number | undefined {
    return this.at.get(uid);
  }
}

function parseRevocation(name: string, text: string): { uid: Uid; at: number } {
  const v: unknown = JSON.parse(text);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object");
  const { uid, at } = v as Record<string, unknown>;
  if (uid !== name) throw new Error("uid does not match the file name");
  const t = typeof at === "string" ? Date.parse(at) : NaN;
  if (Number.isNaN(t)) throw new Error("at is not a time");
  return { uid: validate.uid(name), at: t };
}

export interface CertificateDeps {
  /** This school: a district certificate issued for another school is no login here, whatever uid it names. */
  site: string;
  revocations: Revocations;
  /** The registered user, or not_registered. */
  registered(uid: Uid): Promise<unknown>;
  log: Logger;
}

const refused = (why: string) => new SugarError("auth_invalid", `client certificate refused: ${why}`);

/** The uid a verified client certificate logs in as, or auth_invalid. */
export async function certificateUid(d: CertificateDeps, req: pb.CertificateRequest.$Properties): Promise<Uid> {
  let uid: Uid;
  try {
    uid = validate.uid(req.uid ?? "");
  } catch (err) {
    if (err instanceof SugarError && err.code === "invalid_input") throw refused("its subject CN is not a uid (40 lower-case hex digits)");
    throw err;
  }
  // The keyring believes the asking school's registry, so another school could be issued any uid: its site tells.
  if ((req.site ?? "") !== d.site) throw refused(`it was issued for ${req.site ? `school ${JSON.stringify(req.site.slice(0, 64))}` : "no school"}, not this one (${d.site})`);
  const notBefore = Date.parse(req.notBefore ?? "");
  if (Number.isNaN(notBefore)) throw refused("it has no readable notBefore");
  try {
    await d.registered(uid);
  } catch (err) {
    if (err instanceof SugarError && err.code === "not_registered") throw refused(`${uid} is not registered at this school`);
    throw err;
  }
  const gone = d.revocations.revokedAt(uid);
  // A certificate's times are whole seconds: one issued in the very second of the removal (to the uid
  // registered again at once) passes; one from an earlier second was issued to the user who is gone.
  if (gone !== undefined && Math.floor(notBefore / 1000) < Math.floor(gone / 1000)) {
    d.log.debug(`certificate ${req.serial ?? "?"} of ${uid} refused: issued ${new Date(notBefore).toISOString()}, uid removed or replaced ${new Date(gone).toISOString()}`);
    throw refused(`it was issued before ${uid} was removed or replaced; ask for a new one (POST /client/certificate)`);
  }
  return uid;
}
