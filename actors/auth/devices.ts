/**
 * Browsers' device secrets, under `<root>/auth/devices/` (directory 0700):
 *
 *   devices/<sha256 hex>   {"uid", "created"} (0600): one browser's device
 *
 * A device secret is 32 bytes from the CSPRNG, the value of the browser's
 * `sugar_device` cookie as base64url; the file is named by the SHA-256 of
 * those 32 bytes, so the disk never holds a secret and a file name tells
 * nothing about the cookie. The secrets carry 256 bits, so an unsalted hash
 * is enough, and finding a file by its hash leaks nothing of use about the
 * secret. Every device is also in memory (a map from hash to uid), so a
 * check reads no file; they are few (a browser registers once, and the web
 * adapter limits registrations per address).
 */
import { createHash } from "node:crypto";
import { DurableDir } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import * as validate from "../../src/validate.js";
import type { Uid } from "../../src/validate.js";
import { fromBase64url, newSecret, toBase64url } from "./mac.js";

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const HASH = /^[0-9a-f]{64}$/;
/** Devices kept per uid: a new one beyond that revokes the oldest, so one uid cannot fill the disk. */
export const MAX_PER_UID = 32;

interface Device {
  uid: Uid;
  created: number;
}

/** The file name of a device value, or undefined when the value is not 32 bytes of strict base64url. */
export function deviceHash(value: string): string | undefined {
  if (value.length !== 43) return undefined;
  const bytes = fromBase64url(value);
  return bytes && bytes.length === 32 ? createHash("sha256").update(bytes).digest("hex") : undefined;
}

export class DeviceStore {
  private readonly devices = new Map<string, Device>();
  private readonly byUid = new Map<Uid, Set<string>>();
  private readonly files: DurableDir;

  constructor(readonly dir: string, private readonly log: Logger) {
    this.files = new DurableDir(dir, FILE_MODE);
  }

  /** Makes the directory private and loads every device; a file that cannot be read is left alone and its device does not work. */
  async open(): Promise<void> {
    for (const { name, path, text } of await this.files.open(DIR_MODE)) {
      try {
        if (!HASH.test(name)) throw new Error("the name is not a SHA-256");
        this.remember(name, parseDevice(text));
      } catch (err) {
        // One browser registers again; refusing to start would stop the school.
        this.log.warn(`${path} is unreadable (${(err as Error).message}): that browser must register again`);
      }
    }
  }

  /** A new device for `uid`, on disk before it is returned: the cookie value (a secret). */
  async add(uid: Uid, now: number): Promise<string> {
    const value = toBase64url(newSecret());
    const hash = deviceHash(value)!;
    await this.files.write(hash, JSON.stringify({ uid, created: new Date(now).toISOString() }) + "\n");
    this.remember(hash, { uid, created: now });
    const mine = [...(this.byUid.get(uid) ?? [])].sort((a, b) => this.devices.get(a)!.created - this.devices.get(b)!.created);
    for (const old of mine.slice(0, Math.max(0, mine.length - MAX_PER_UID))) await this.remove(old);
    return value;
  }

  /** The uid of a device value, or undefined when it is malformed, unknown or revoked. */
  uidOf(value: string): Uid | undefined {
    const hash = deviceHash(value);
    return hash === undefined ? undefined : this.devices.get(hash)?.uid;
  }

  /** Revokes one device; false when the value names none. */
  async revoke(value: string): Promise<boolean> {
    const hash = deviceHash(value);
    return hash !== undefined && this.devices.has(hash) ? this.remove(hash) : false;
  }

  /** Revokes every device of `uid` (a removed user); how many went. */
  async revokeUid(uid: Uid): Promise<number> {
    const mine = [...(this.byUid.get(uid) ?? [])];
    for (const hash of mine) await this.remove(hash);
    return mine.length;
  }

  /** Gone from memory at once, so a check in the meantime fails; then from disk. */
  private async remove(hash: string): Promise<boolean> {
    const d = this.devices.get(hash);
    if (!d) return false;
    this.devices.delete(hash);
    const mine = this.byUid.get(d.uid);
    mine?.delete(hash);
    if (mine?.size === 0) this.byUid.delete(d.uid);
    await this.files.remove(hash);
    return true;
  }

  private remember(hash: string, d: Device): void {
    this.devices.set(hash, d);
    const mine = this.byUid.get(d.uid) ?? new Set<string>();
    mine.add(hash);
    this.byUid.set(d.uid, mine);
  }
}

function parseDevice(text: string): Device {
  const v: unknown = JSON.parse(text);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object");
  const { uid, created } = v as Record<string, unknown>;
  if (typeof uid !== "string") throw new Error("uid is not a string");
  const t = typeof created === "string" ? Date.parse(created) : NaN;
  if (Number.isNaN(t)) throw new Error("created is not a time");
  return { uid: validate.uid(uid), created: t };
}
