/**
 * The file registry: one JSON file per item, `<root>/home/registry/users/<uid>`,
 * `machines/<machine_sn>` and `claims/<new uid>`, written atomically by the
 * journal's checkpoints (journal.ts), and in memory every record with its
 * indexes (uid, machine_sn, machine_uuid): reads never touch the disk. At
 * start the records come from the checkpointed index (`.index`, one file),
 * or from the files when it is missing or stale, and a new index is written.
 * File names come only from validated identifiers.
 */
import { closeSync, openSync, promises as fsp, readFileSync, readSync } from "node:fs";
import { describe } from "../../src/errors.js";
import { join } from "node:path";
import { ensureDir, writingTo } from "../../src/fs.js";
import { Journal } from "./journal.js";
import type { Logger } from "../../src/log.js";
import * as validate from "../../src/validate.js";
import type { DeviceId, MachineSn, MachineUuid, Uid } from "../../src/validate.js";

/** "" is a user with an SSH key (Sugar, an XO); "browser" one without (a phone's browser, a client utility): no Journal backup. */
export type UserKind = "" | "browser";

/**
 * A user's file, keys as the sugar-server registry documents them. Every
 * identifier was validated before the record was made (at registration, or
 * when the file was read back): the types say so.
 */
export interface UserRecord {
  uid: Uid;
  nickname: string;
  machine_sn: MachineSn | "";
  machine_uuid: MachineUuid | "";
  pubkey: string;
  /** May administer this school's server. */
  admin: boolean;
  kind: UserKind;
  /** A browser user registered by a client utility: the device's MAC address; else "". */
  device_id: DeviceId | "";
  created: string;
  updated: string;
}

/** A re-flash claim: `new_uid` registered with the serial number of `old_uid`; an admin (or the old key) settles it. */
export interface ClaimRecord {
  new_uid: Uid;
  old_uid: Uid;
  machine_sn: MachineSn;
  new_nickname: string;
  old_nickname: string;
  created: string;
}

export interface MachineRecord {
  machine_sn: MachineSn;
  machine_uuid: MachineUuid | "";
  uid: Uid | "";
  source: string;
  created: string;
  updated: string;
}

export class RegistryStore {
  private readonly users = new Map<string, UserRecord>();
  private readonly machines = new Map<string, MachineRecord>();
  /**
   * machine_sn → every user registered from it (serial numbers are not
   * unique: Sugar's fallback is shared). Nearly every serial number has one
   * user: a uid alone, a Set only for the shared ones (a million Sets would
   * cost a district's registry a hundred megabytes).
   */
  private readonly bySn = new Map<string, Uid | Set<Uid>>();
  private readonly byUuid = new Map<string, Uid>();
  /** Pending re-flash claims by the new uid. */
  private readonly claims = new Map<Uid, ClaimRecord>();
  private sorted: UserRecord[] | undefined;
  private admins = 0;
  private readonly usersDir: string;
  private readonly machinesDir: string;
  private readonly claimsDir: string;
  /** Group commit: a write is durable once journaled; the files catch up at checkpoints. */
  private readonly journal: Journal;

  constructor(readonly dir: string, private readonly log: Logger) {
    this.usersDir = join(dir, "users");
    this.machinesDir = join(dir, "machines");
    this.claimsDir = join(dir, "claims");
    this.journal = new Journal(dir, { users: this.usersDir, machines: this.machinesDir, claims: this.claimsDir }, log);
  }

  async load(): Promise<void> {
    await ensureDir(this.usersDir);
    await ensureDir(this.machinesDir);
    await ensureDir(this.claimsDir);
    await this.journal.open(); // a crash's journaled writes reach the files (and the index) before they are read
    const { users, machines, claims } = (await this.fromIndex()) ?? (await this.fromFiles());
    users.sort((a, b) => (a.updated < b.updated ? -1 : a.updated > b.updated ? 1 : 0));
    for (const u of users) this.indexUser(u);
    for (const m of machines) this.machines.set(m.machine_sn, m);
    for (const c of claims) this.claims.set(c.new_uid, c);
  }

  /** The records of a current index; undefined (the index discarded) when it is missing or stale. */
  private async fromIndex(): Promise<Records | undefined> {
    const index = this.journal.index;
    if (!index.usable) return undefined;
    const r = index.read<UserRecord | MachineRecord | ClaimRecord>((table, name, v) => {
      try {
        return table === "users" ? parseUser(name, v) : table === "machines" ? parseMachine(name, v) : parseClaim(name, v);
      } catch {
        return undefined;
      }
    });
    if (!r.current) {
      this.log.warn(`reading every registry file: ${r.why}`);
      await index.discard();
      return undefined;
    }
    const values = <T>(table: string) => [...(r.records.get(table)?.values() ?? [])] as T[];
    return { users: values<UserRecord>("users"), machines: values<MachineRecord>("machines"), claims: values<ClaimRecord>("claims") };
  }

  /** Every file read (bad ones reported and skipped), then a new index written from what was read. */
  private async fromFiles(): Promise<Records> {
    const users = await this.readAll(this.usersDir, (name, v) => parseUser(name, v));
    const machines = await this.readAll(this.machinesDir, (name, v) => parseMachine(name, v));
    const claims = await this.readAll(this.claimsDir, (name, v) => parseClaim(name, v));
    function* entries(): Generator<[string, string, object]> {
      for (const u of users) yield ["users", u.uid, u];
      for (const m of machines) yield ["machines", m.machine_sn, m];
      for (const c of claims) yield ["claims", c.new_uid, c];
    }
    try {
      await this.journal.index.rewrite(entries());
      this.log.info(`indexed ${users.length} users, ${machines.length} machines and ${claims.length} claims (the next start reads one file)`);
    } catch (err) {
      // Not fatal: the next start reads the files again.
      this.log.warn(`cannot write the registry index: ${describe(err)}`);
    }
    return { users, machines, claims };
  }

  /** Makes every file durable on its own (a final checkpoint) and closes the journal. */
  close(): Promise<void> {
    return this.journal.close();
  }

  get userCount(): number {
    return this.users.size;
  }
  get adminCount(): number {
    return this.admins;
  }

  user(uid: Uid): UserRecord | undefined {
    return this.users.get(uid);
  }
  /** The user registered (or re-registered) last from this serial number. */
  userBySn(sn: MachineSn): UserRecord | undefined {
    let last: UserRecord | undefined;
    const holders = this.bySn.get(sn);
    for (const uid of holders === undefined ? [] : typeof holders === "string" ? [holders] : holders) {
      const u = this.users.get(uid);
      if (u && (!last || u.updated > last.updated)) last = u;
    }
    return last;
  }
  userByUuid(uuid: MachineUuid): UserRecord | undefined {
    const uid = this.byUuid.get(uuid.toLowerCase());
    return uid === undefined ? undefined : this.users.get(uid);
  }
  machine(sn: MachineSn): MachineRecord | undefined {
    return this.machines.get(sn);
  }

  claim(newUid: Uid): ClaimRecord | undefined {
    return this.claims.get(newUid);
  }
  listClaims(): ClaimRecord[] {
    return [...this.claims.values()].sort((a, b) => a.created.localeCompare(b.created));
  }
  // Durable first, then visible: memory changes the moment the journal line is synced, before the
  // write resolves (a checkpoint may cover the line from then on).
  async putClaim(c: ClaimRecord): Promise<void> {
    await writingTo("the registration", () => this.journal.put("claims", c.new_uid, c, () => void this.claims.set(c.new_uid, c)));
  }
  async removeClaim(newUid: Uid): Promise<ClaimRecord | undefined> {
    const c = this.claims.get(newUid);
    if (!c) return undefined;
    await writingTo("the change", () => this.journal.remove("claims", newUid, () => void this.claims.delete(newUid)));
    return c;
  }

  /** Users sorted by uid, a page at a time (the sorted order is kept until the next change). */
  listUsers(offset: number, limit: number, query = ""): { users: UserRecord[]; total: number } {
    this.sorted ??= [...this.users.values()].sort((a, b) => (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
    const q = query.toLowerCase();
    const all = q ? this.sorted.filter((u) => u.nickname.toLowerCase().includes(q)) : this.sorted;
    return { users: limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset), total: all.length };
  }
  get machineCount(): number {
    return this.machines.size;
  }
  listMachines(): MachineRecord[] {
    return [...this.machines.values()].sort((a, b) => a.machine_sn.localeCompare(b.machine_sn));
  }

  async putUser(u: UserRecord): Promise<void> {
    await writingTo("the registration", () =>
      this.journal.put("users", u.uid, u, () => {
        const old = this.users.get(u.uid);
        if (old) this.unindexUser(old);
        this.indexUser(u);
      }),
    );
  }

  async removeUser(uid: Uid): Promise<UserRecord | undefined> {
    const u = this.users.get(uid);
    if (!u) return undefined;
    await writingTo("the change", () => this.journal.remove("users", uid, () => this.unindexUser(u)));
    return u;
  }

  async putMachine(m: MachineRecord): Promise<void> {
    await writingTo("the registration", () => this.journal.put("machines", m.machine_sn, m, () => void this.machines.set(m.machine_sn, m)));
  }

  private indexUser(u: UserRecord): void {
    this.sorted = undefined;
    this.users.set(u.uid, u);
    if (u.admin) this.admins++;
    if (u.machine_sn) {
      const holders = this.bySn.get(u.machine_sn);
      if (holders === undefined || holders === u.uid) this.bySn.set(u.machine_sn, u.uid);
      else if (typeof holders === "string") this.bySn.set(u.machine_sn, new Set([holders, u.uid]));
      else holders.add(u.uid);
    }
    if (u.machine_uuid) this.byUuid.set(u.machine_uuid.toLowerCase(), u.uid);
  }

  private unindexUser(u: UserRecord): void {
    this.sorted = undefined;
    this.users.delete(u.uid);
    if (u.admin) this.admins--;
    if (u.machine_sn) {
      const holders = this.bySn.get(u.machine_sn);
      if (holders === u.uid) this.bySn.delete(u.machine_sn);
      else if (typeof holders === "object") {
        holders.delete(u.uid);
        if (holders.size === 1) this.bySn.set(u.machine_sn, holders.values().next().value!);
      }
    }
    if (u.machine_uuid && this.byUuid.get(u.machine_uuid.toLowerCase()) === u.uid) this.byUuid.delete(u.machine_uuid.toLowerCase());
  }

  /**
   * Reads every record file in a directory; bad files are reported and skipped.
   * Synchronous on purpose: it runs once, before the actor serves anything, and
   * small synchronous reads are several times faster than one async call per
   * file (100,000 users load in about a second instead of seven).
   */
  private async readAll<T>(dir: string, parse: (name: string, v: unknown) => T): Promise<T[]> {
    const names = (await fsp.readdir(dir)).filter((n) => !n.startsWith("."));
    const out: T[] = [];
    const buf = Buffer.alloc(64 * 1024);
    for (const name of names) {
      const path = join(dir, name);
      try {
        const fd = openSync(path, "r");
        let text: string;
        try {
          const n = readSync(fd, buf, 0, buf.length, 0);
          text = n < buf.length ? buf.toString("utf8", 0, n) : readFileSync(path, "utf8");
        } finally {
          closeSync(fd);
        }
        out.push(parse(name, JSON.parse(text)));
      } catch (err) {
        this.log.warn(`skipping ${path}: ${(err as Error).message}`);
      }
    }
    return out;
  }
}

interface Records {
  users: UserRecord[];
  machines: MachineRecord[];
  claims: ClaimRecord[];
}

function str(v: Record<string, unknown>, key: string): string {
  const x = v[key];
  if (x === undefined || x === null) return "";
  if (typeof x !== "string") throw new Error(`${key} is not a string`);
  return x;
}

function parseUser(name: string, raw: unknown): UserRecord {
  if (typeof raw !== "object" || raw === null) throw new Error("not a JSON object");
  const v = raw as Record<string, unknown>;
  // A file written before the backup actor owned pending_restore may still carry it: ignored.
  // One written before browser users existed has no kind or device_id: a key's user.
  const sn = str(v, "machine_sn");
  const uuid = str(v, "machine_uuid");
  const kind = str(v, "kind");
  if (kind !== "" && kind !== "browser") throw new Error(`kind ${JSON.stringify(kind.slice(0, 40))} is not "" or "browser"`);
  const u: UserRecord = {
    uid: validate.uid(str(v, "uid")),
    nickname: str(v, "nickname"),
    machine_sn: sn ? validate.machineSn(sn) : "",
    machine_uuid: uuid ? validate.machineUuid(uuid) : "",
    pubkey: str(v, "pubkey"),
    admin: v.admin === true,
    kind,
    device_id: validate.deviceId(str(v, "device_id")),
    created: str(v, "created"),
    updated: str(v, "updated"),
  };
  if (u.uid !== name) throw new Error(`uid ${u.uid} does not match the file name`);
  return u;
}

function parseClaim(name: string, raw: unknown): ClaimRecord {
  if (typeof raw !== "object" || raw === null) throw new Error("not a JSON object");
  const v = raw as Record<string, unknown>;
  const c: ClaimRecord = {
    new_uid: validate.uid(str(v, "new_uid")),
    old_uid: validate.uid(str(v, "old_uid")),
    machine_sn: validate.machineSn(str(v, "machine_sn")),
    new_nickname: str(v, "new_nickname"),
    old_nickname: str(v, "old_nickname"),
    created: str(v, "created"),
  };
  if (c.new_uid !== name) throw new Error(`new_uid ${c.new_uid} does not match the file name`);
  return c;
}

function parseMachine(name: string, raw: unknown): MachineRecord {
  if (typeof raw !== "object" || raw === null) throw new Error("not a JSON object");
  const v = raw as Record<string, unknown>;
  const uuid = str(v, "machine_uuid");
  const uid = str(v, "uid");
  const m: MachineRecord = {
    machine_sn: validate.machineSn(str(v, "machine_sn")),
    machine_uuid: uuid ? validate.machineUuid(uuid) : "",
    uid: uid ? validate.uid(uid) : "",
    source: str(v, "source"),
    created: str(v, "created"),
    updated: str(v, "updated"),
  };
  if (m.machine_sn !== name) throw new Error(`machine_sn ${m.machine_sn} does not match the file name`);
  return m;
}
