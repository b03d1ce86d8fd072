/**
 * Baseline for the REST scenarios: a bare node:http server written for the
 * bench alone. `GET /client/status?uid=` answers the same JSON as sugar-server
 * from a Map; `POST /client/register` parses the same JSON body and durably
 * writes one small file per request (open a temporary file, write, fsync,
 * close, rename), then answers the same JSON. No bus, no actors, no
 * validation beyond what is needed to answer.
 *
 *   node dist/test/bench/baselines/rest.js --dir DIR --jabber-url HOST --backup-url URL [--known FILE]
 *
 * --known FILE: uids registered before the start, one per line (the same
 * number the subject finds on disk).
 */
import { createHash, randomBytes } from "node:crypto";
import { constants, promises as fsp, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";

function arg(name: string, optional = false): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined && !optional) throw new Error(`--${name} is required`);
  return v ?? "";
}

const dir = arg("dir");
const jabber = arg("jabber-url");
const backupUrl = arg("backup-url");
const backupPath = "datastore-current";
const users = new Map<string, { pending_restore: boolean }>();
const UID = /^[0-9a-f]{40}$/;
const BODY_LIMIT = 64 * 1024;
const known = arg("known", true);
if (known) for (const uid of readFileSync(known, "utf8").split("\n")) if (UID.test(uid)) users.set(uid, { pending_restore: false });

function send(res: ServerResponse, status: number, body: unknown): void {
  const buf = Buffer.from(JSON.stringify(body) + "\n");
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": String(buf.length) });
  res.end(buf);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= BODY_LIMIT) chunks.push(c);
    });
    req.on("end", () => (size > BODY_LIMIT ? reject(new Error("body too large")) : resolve(Buffer.concat(chunks))));
    req.on("error", reject);
  });
}

async function writeDurably(name: string, data: string): Promise<void> {
  const tmp = join(dir, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
  const fh = await fsp.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, join(dir, name));
}

async function register(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const fields = JSON.parse((await readBody(req)).toString("utf8")) as Record<string, unknown>;
  const { nickname, pubkey } = fields;
  if (typeof nickname !== "string" || typeof pubkey !== "string") return send(res, 400, { success: "ERR", error: "nickname and pubkey are required" });
  const body = pubkey.trim().split(/\s+/)[1] ?? pubkey.trim();
  const uid = createHash("sha1").update(body, "ascii").digest("hex");
  const t = new Date().toISOString();
  const created = !users.has(uid);
  const record = { uid, nickname, machine_sn: fields.machine_sn ?? "", machine_uuid: fields.machine_uuid ?? "", pubkey, pending_restore: false, created: t, updated: t };
  await writeDurably(uid, JSON.stringify(record, null, 2) + "\n");
  users.set(uid, { pending_restore: false });
  send(res, 200, { success: "OK", uid, jabberserver: jabber, backupurl: backupUrl, backuppath: backupPath, created });
}

function status(url: URL, res: ServerResponse): void {
  const uid = url.searchParams.get("uid") ?? "";
  if (!UID.test(uid)) return send(res, 400, { success: "ERR", error: "uid must be 40 hex digits" });
  const u = users.get(uid);
  if (!u) return send(res, 200, { success: "OK", registered: false });
  send(res, 200, { success: "OK", registered: true, "jabber-url": jabber, "backup-url": backupUrl, "pending-restore": u.pending_restore });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (req.method === "GET" && url.pathname === "/client/status") return status(url, res);
  if (req.method === "POST" && url.pathname === "/client/register") {
    register(req, res).catch((err: Error) => send(res, 500, { success: "ERR", error: err.message }));
    return;
  }
  send(res, 404, { success: "ERR", error: "not found" });
});
server.keepAliveTimeout = 5000;

server.listen({ host: "127.0.0.1", port: 0 }, () => {
  const a = server.address();
  if (a === null || typeof a === "string") throw new Error("no TCP address");
  process.stdout.write(`baseline: listening on 127.0.0.1:${a.port}\nready: baseline rest\n`);
});
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
