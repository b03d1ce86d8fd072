/**
 * backup: Journal backup and restore throughput through the forced command
 * (sshd → bin/sugar-backup-command.js → rrsync), against plain rsync over
 * the same sshd with a key that has no forced command, into a plain
 * directory. The registry and backup actors run in this process on a
 * MemoryBus, as in test/e2e/backup.test.ts; one client registers a real key
 * and rsyncs exactly as a Sugar desktop would. The Journal is random data
 * (files of 5 MiB, 1 MiB when small, and many 1000-byte ones), so -z cannot
 * shrink it. Subject and baseline alternate in every run: forced upload,
 * plain upload, forced restore, plain restore; each run starts from empty
 * targets, and the medians are reported. Last, the fixed cost of one
 * connection: an rsync with nothing to send. Loopback only; the rows have
 * no target (the figures are informational). Without sshd, ssh, rsync,
 * rrsync or ssh-keygen every row is reported as skipped.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startBackup } from "../../../actors/backup/index.js";
import { startRegistry } from "../../../actors/registry/index.js";
import { MemoryBus } from "../../../src/bus/memory.js";
import { backupClient, registryClient } from "../../../src/codec.js";
import { configWith } from "../../../src/config.js";
import { silentLogger } from "../../../src/log.js";
import { makeKey, type TestKey } from "../../support/keys.js";
import { requires, toolBin, TOOLS } from "../../support/requires.js";
import { rsyncAs, SSHD_TOOLS, startSshd, type RunResult, type Sshd } from "../../support/sshd.js";
import { sameTree, treeHashes } from "../../support/tree.js";
import { waitFor } from "../../support/wait.js";
import type { Bench, Scenario } from "../context.js";
import { judge, round, skippedRow, type Row } from "../report.js";

const SITE = "backupbench";
const TIMEOUT_MS = 30_000;
/** rsync with ds-backup's flags less its -z, then with -z (ds-backup sends `-z -rlt --partial --delete --timeout=160`). */
const FLAG_SETS = [
  { part: "", flags: ["-rlt", "--delete"] },
  { part: "-z", flags: ["-z", "-rlt", "--delete"] },
] as const;
const ROW_NAMES = ["backup/upload", "backup/restore", "backup/upload-z", "backup/restore-z", "backup/no-op"];

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function ok(r: RunResult, what: string): void {
  if (r.code !== 0) throw new Error(`${what}: rsync exited ${r.code}: ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
}

/** Seconds one successful rsync run takes. */
async function seconds(what: string, run: () => Promise<RunResult>): Promise<number> {
  const start = process.hrtime.bigint();
  const r = await run();
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  ok(r, what);
  return s;
}

/** A Journal of random bytes: `mb` MiB in large files, plus `small` files of 1000 bytes. Returns its size in bytes. */
function makeJournal(dir: string, mb: number, small: number): number {
  const store = join(dir, "store");
  mkdirSync(store, { recursive: true });
  const chunkMb = mb >= 10 ? 5 : 1;
  let bytes = 0;
  for (let i = 0, left = mb; left > 0; i++, left -= chunkMb) {
    const data = randomBytes(Math.min(chunkMb, left) * 1024 * 1024);
    bytes += data.length;
    writeFileSync(join(store, `entry-${i}`), data);
  }
  for (let i = 0; i < small; i++) {
    const data = randomBytes(1000);
    bytes += data.length;
    writeFileSync(join(store, `small-${i}`), data);
  }
  return bytes;
}

interface Rig {
  sshd: Sshd;
  client: TestKey;
  /** The client's directory on the server. */
  clientDir: string;
  plain: TestKey;
  lastBackup(): Promise<string>;
}

/** Registry and backup actors on a MemoryBus, a registered client key, a plain key, and sshd trusting both. */
async function startRig(bench: Bench, root: string, work: string): Promise<Rig> {
  const config = configWith({
    root,
    site: SITE,
    "backup-user": "sugar",
    "backup-host": "xs.example",
    // Admission must not refuse a backup because the bench itself loads the machine.
    "backup-max-load": 1000,
    "backup-min-free": 1,
    "backup-keep": 3,
    "bus-timeout": TIMEOUT_MS,
    "rrsync-path": toolBin(TOOLS.rrsync),
  });
  const bus = new MemoryBus({ timeoutMs: TIMEOUT_MS });
  const registryActor = await startRegistry({ bus, config, log: silentLogger });
  const backupActor = await startBackup({ bus, config, log: silentLogger });
  bench.onCleanup(async () => {
    await backupActor.stop();
    await registryActor.stop();
    await bus.close();
  });
  const plainKeys = join(work, "plain_authorized_keys");
  const plain = makeKey(work, "ed25519", "plain@bench");
  writeFileSync(plainKeys, `${plain.type} ${plain.body}\n`, { mode: 0o600 });
  const keysFile = join(root, ".ssh", "authorized_keys");
  const sshd = await startSshd({ authorizedKeysFiles: [keysFile, plainKeys] });
  bench.onCleanup(() => sshd.stop());

  const client = makeKey(work, "ed25519", "journal@bench");
  const registry = registryClient(bus, SITE, { timeoutMs: TIMEOUT_MS });
  const backups = backupClient(bus, SITE, { timeoutMs: TIMEOUT_MS });
  await registry.call("register", { nickname: "Bench", pubkey: client.line });
  const shown = await waitFor("the client's backup directory", async () => (await backups.call("show", { uid: client.uid })).backup?.directory || undefined);
  await waitFor("the client's authorized_keys line", () => existsSync(keysFile) && readFileSync(keysFile, "utf8").includes(` ${client.uid}" `), 20_000);
  return { sshd, client, clientDir: shown, plain, lastBackup: async () => (await backups.call("show", { uid: client.uid })).backup?.lastBackup ?? "" };
}

export const backup: Scenario = {
  id: "backup",
  what: "Journal backup and restore MB/s through the forced command vs plain rsync over the same sshd",
  async run(bench) {
    const need = requires(...SSHD_TOOLS, TOOLS.rrsync);
    if (!need.ok) return ROW_NAMES.map((name) => skippedRow(name, need.why));
    const { mb, smallFiles, runs, noops } = bench.sizes.backup;
    const base = bench.dir("backup");
    const work = join(base, "work");
    mkdirSync(work);
    const rig = await startRig(bench, join(base, "root"), work);
    const { sshd, client, plain } = rig;
    const src = join(work, "journal");
    const bytes = makeJournal(src, mb, smallFiles);
    const original = treeHashes(src);
    const plainDir = join(work, "plain-target");
    const mbps = (secs: number) => round(bytes / 1e6 / secs, 1);
    const files = [...original.values()].filter((v) => v !== "dir").length;
    const size = `${(bytes / 1e6).toFixed(1)} MB in ${files} files`;
    const rows: Row[] = [];

    for (const { part, flags } of FLAG_SETS) {
      const n = part ? 1 : runs; // -z costs CPU on both sides alike; one run is enough to compare
      bench.progress(`backup: rsync ${flags.join(" ")} of ${size}, forced command and plain alternately, ${n} run(s)`);
      const t = { fUp: [] as number[], pUp: [] as number[], fDown: [] as number[], pDown: [] as number[] };
      for (let run = 0; run < n; run++) {
        rmSync(join(rig.clientDir, "datastore-current"), { recursive: true, force: true });
        rmSync(plainDir, { recursive: true, force: true });
        mkdirSync(plainDir);
        const outForced = join(work, `out-forced${part}-${run}`);
        const outPlain = join(work, `out-plain${part}-${run}`);
        mkdirSync(outForced);
        mkdirSync(outPlain);
        const before = await rig.lastBackup();
        t.fUp.push(await seconds("forced backup", () => rsyncAs(sshd, client.privatePath, [...flags, `${src}/`, sshd.remote("datastore-current")])));
        // The snapshot the server makes after a backup is not timed, but must not overlap the next measurement.
        await waitFor("the server to handle the backup", async () => (await rig.lastBackup()) !== before, TIMEOUT_MS, 50);
        t.pUp.push(await seconds("plain backup", () => rsyncAs(sshd, plain.privatePath, [...flags, `${src}/`, sshd.remote(`${plainDir}/current`)])));
        t.fDown.push(await seconds("forced restore", () => rsyncAs(sshd, client.privatePath, [...flags, sshd.remote("datastore-current/"), `${outForced}/`])));
        t.pDown.push(await seconds("plain restore", () => rsyncAs(sshd, plain.privatePath, [...flags, sshd.remote(`${plainDir}/current/`), `${outPlain}/`])));
        const diff = sameTree(original, treeHashes(outForced));
        if (diff) throw new Error(`the restore through the forced command differs from the Journal:\n${diff}`);
        rmSync(outForced, { recursive: true });
        rmSync(outPlain, { recursive: true });
      }
      const how = `rsync ${flags.join(" ")}, ${size}, ${n === 1 ? "1 run" : `median of ${n} runs`}, measured alternately with the baseline`;
      for (const [dir, subject, baseline, what] of [
        ["upload", t.fUp, t.pUp, "backup to datastore-current"],
        ["restore", t.fDown, t.pDown, "restore from datastore-current"],
      ] as const) {
        const value = mbps(median(subject));
        const plainRate = mbps(median(baseline));
        rows.push(
          judge({
            scenario: `backup/${dir}${part}`,
            unit: "MB/s",
            value,
            baseline: plainRate,
            ratio: plainRate > 0 ? round(value / plainRate) : null,
            p50_ms: null,
            p99_ms: null,
            errors: 0,
            notes: `${what} through the forced command (node + rrsync on the server side); baseline: plain rsync with a key without forced command, into a plain directory over the same sshd; ${how}`,
          }),
        );
      }
    }

    // The fixed cost of a connection: an rsync with nothing to send (node + rrsync start-up vs rsync alone).
    const tiny = join(work, "tiny");
    mkdirSync(tiny);
    writeFileSync(join(tiny, "f"), "x");
    ok(await rsyncAs(sshd, client.privatePath, ["-rlt", `${tiny}/`, sshd.remote("tiny")]), "forced first copy");
    ok(await rsyncAs(sshd, plain.privatePath, ["-rlt", `${tiny}/`, sshd.remote(`${plainDir}/tiny`)]), "plain first copy");
    const fNoop: number[] = [];
    const pNoop: number[] = [];
    bench.progress(`backup: ${noops} rsyncs with nothing to send, forced command and plain alternately`);
    for (let i = 0; i < noops; i++) {
      fNoop.push(await seconds("forced no-op", () => rsyncAs(sshd, client.privatePath, ["-rlt", `${tiny}/`, sshd.remote("tiny")])));
      pNoop.push(await seconds("plain no-op", () => rsyncAs(sshd, plain.privatePath, ["-rlt", `${tiny}/`, sshd.remote(`${plainDir}/tiny`)])));
    }
    const fMs = round(median(fNoop) * 1000, 1);
    const pMs = round(median(pNoop) * 1000, 1);
    rows.push(
      judge({
        scenario: "backup/no-op",
        unit: "ms",
        value: fMs,
        baseline: pMs,
        ratio: pMs > 0 ? round(fMs / pMs) : null,
        p50_ms: null,
        p99_ms: null,
        errors: 0,
        notes: `wall time of one rsync -rlt with nothing to send (ssh connection, then node + rrsync vs rsync alone on the server side), median of ${noops}, alternately; lower is better`,
      }),
    );
    return rows;
  },
};
