/**
 * What the district-CA contracts share: a keyring actor on a test's bus, over
 * a new keyring directory, with or without its CA, asked as a school
 * (`keyringCaClient(bus, site)`), and a stand-in for a school's registry that
 * knows the uids the test names.
 */
import { join } from "node:path";
import { startKeyring } from "../../actors/keyring/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { subjects } from "../../src/bus/subjects.js";
import { keyringCaClient, keyringClient, serveOps, type KeyringCaClient, type KeyringClient } from "../../src/codec.js";
import { configWith, type Config } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { describeDiff, sameSnapshot, snapshot } from "../support/disk.js";
import { requires, TOOLS } from "../support/requires.js";
import * as assert from "uvu/assert";
import { contractSuite, type BusKind, type ContractCtx } from "./buses.js";

export interface Ctx extends ContractCtx {
  subs: { drain(): Promise<void> }[];
}

export interface CaKeyring {
  config: Config;
  dir: string;
  admin: KeyringClient;
  /** Asks as the school `site`. */
  as(site: string): KeyringCaClient;
}

export const UID1 = "1111111111111111111111111111111111111abc";
export const UID2 = "2222222222222222222222222222222222222222";

export function caSuite(kind: BusKind, name: string) {
  // The keyring's subjects are the same for every test: it must be gone before the next one starts.
  const { t, test } = contractSuite<Ctx>(name, kind, {
    requirement: requires(TOOLS.openssl, TOOLS.sshKeygen),
    timeoutMs: 10_000,
    setUp: (c) => (c.subs = []),
    tearDown: async (c) => {
      for (const s of c.subs) await s.drain();
    },
  });

  let roots = 0;
  /** A keyring over a new directory; with `ca` (the default) it has run `keyring init --ca`. */
  async function keyring(c: Ctx, opts: { ca?: boolean; options?: Partial<Record<string, string>> } = {}): Promise<CaKeyring> {
    const config = configWith({ root: join(c.dir.path, `root${++roots}`), site: "central", ...opts.options });
    c.running.push(await startKeyring({ bus: c.bus, config, log: silentLogger }));
    await c.bus.flush();
    const admin = keyringClient(c.bus, { timeoutMs: 10_000 });
    if (opts.ca ?? true) await admin.call("init", { ca: true });
    return { config, dir: config["keyring-dir"], admin, as: (site) => keyringCaClient(c.bus, site, { timeoutMs: 10_000 }) };
  }

  /** A school's registry that knows `uids` (and answers not_registered for the rest), as the keyring asks it. */
  async function registry(c: Ctx, site: string, uids: string[]): Promise<void> {
    c.subs.push(
      serveOps(
        c.bus,
        subjects.actorAll(site, "registry"),
        sugar.registry.Request,
        sugar.registry.Reply,
        (req) => {
          if (req.op !== "lookup") throw new SugarError("invalid_input", `the stand-in registry answers lookup, not ${req.op}`);
          const uid = req.lookup?.uid ?? "";
          if (!uids.includes(uid)) throw new SugarError("not_registered", "no such user");
          return { lookup: { user: { uid, nickname: `user ${uid.slice(0, 4)}` } } };
        },
        silentLogger,
      ),
    );
    await c.bus.flush();
  }

  const it = (label: string, fn: (c: Ctx) => Promise<void>) => test(`${name}[${kind.name}]: ${label}`, fn);
  return { t, it, keyring, registry };
}

/** Runs `fn` and asserts the keyring directory is as it was. */
export async function unchanged(dir: string, fn: () => Promise<void>): Promise<void> {
  const before = snapshot(dir);
  await fn();
  const after = snapshot(dir);
  assert.ok(sameSnapshot(before, after), describeDiff(before, after));
}
