/**
 * Baseline for the activation storm: a bare TCP server (node:net) that reads
 * a connection to EOF and sends the lease stored for the serial number it
 * read, the same bytes sugar-server serves, then closes. Leases are read at
 * start from a file of act01 lines. No caps, no bus, no disk per request.
 * Its listen backlog holds a whole storm (1024 connections), so the kernel
 * does not drop the SYNs of clients it has not accepted yet: the strongest
 * bare server, not node's default (511).
 *
 *   node dist/test/bench/baselines/activation.js --leases FILE
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const i = process.argv.indexOf("--leases");
const file = i >= 0 ? process.argv[i + 1] : undefined;
if (!file) throw new Error("--leases FILE is required");
const leases = new Map<string, Buffer>();
for (const line of readFileSync(file, "utf8").split("\n")) {
  const sn = /^act01: (\S+) /.exec(line)?.[1];
  if (sn) leases.set(sn, Buffer.from(line + "\n"));
}
const EMPTY = Buffer.alloc(0);

const server = createServer({ allowHalfOpen: true }, (socket) => {
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  socket.on("end", () => socket.end(leases.get(Buffer.concat(chunks).toString("latin1").trim()) ?? EMPTY));
  socket.on("error", () => socket.destroy());
});

server.listen({ host: "127.0.0.1", port: 0, backlog: 1024 }, () => {
  const a = server.address();
  if (a === null || typeof a === "string") throw new Error("no TCP address");
  process.stdout.write(`baseline: listening on 127.0.0.1:${a.port}\nready: baseline activation (${leases.size} leases)\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
