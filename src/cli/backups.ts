/**
 * `sugar-server backups list | show UID`: what the backup actor knows about
 * each client's directory, asked over the bus (admin socket or NATS; the
 * lead's main.ts picks the transport).
 */
import { sugar } from "../../schemas/gen/messages.js";
import type { BackupClient } from "../codec.js";

type Info = sugar.backup.BackupInfo.$Properties;

export interface BackupsIo {
  out(text: string): void;
  err(text: string): void;
}

const USAGE = "usage: sugar-server backups list | show UID\n";

/** 1536 → "1.5 KiB"; bytes below 1 KiB as they are. */
function humanSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

function detail(b: Info): string {
  return JSON.stringify(
    {
      uid: b.uid,
      nickname: b.nickname,
      directory: b.directory,
      size_bytes: b.sizeBytes ?? 0,
      size: humanSize(b.sizeBytes ?? 0),
      files: b.files ?? 0,
      last_backup: b.lastBackup || null,
      last_restore: b.lastRestore || null,
      pending_restore: !!b.pendingRestore,
      snapshots: (b.snapshots ?? []).map((s) => ({ name: s.name, created: s.created })),
    },
    null,
    2,
  );
}

export async function backupsCommand(args: string[], client: BackupClient, io: BackupsIo): Promise<number> {
  const [sub, uid, ...rest] = args;
  if (sub === "list" && uid === undefined) {
    const backups = (await client.call("list", {})).backups ?? [];
    io.out(
      table([
        ["UID", "NICKNAME", "SIZE", "FILES", "SNAPSHOTS", "LAST BACKUP"],
        ...backups.map((b) => [b.uid ?? "", b.nickname || "-", humanSize(b.sizeBytes ?? 0), String(b.files ?? 0), String(b.snapshots?.length ?? 0), b.lastBackup || "never"]),
      ]),
    );
    io.out(`${backups.length} backup director${backups.length === 1 ? "y" : "ies"}\n`);
    return 0;
  }
  if (sub === "show" && uid !== undefined && rest.length === 0) {
    const r = await client.call("show", { uid });
    io.out(detail(r.backup ?? {}) + "\n");
    return 0;
  }
  io.err(USAGE);
  return 2;
}
