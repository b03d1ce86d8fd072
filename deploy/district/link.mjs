#!/usr/bin/env node
// A school's link to the district hub, for trying a district on one machine:
// a TCP forwarder between the school's leaf nats-server and the hub's leaf
// port. Killing it cuts the link the way a broken WAN line does: the leaf
// nats-server, and the school's sugar-server processes on it, keep running
// (the school's own bus is untouched); starting it again on the same port
// restores the link, and the leaf node joins the hub again by itself.
//
//   node deploy/district/link.mjs LISTEN_PORT HUB_HOST:HUB_PORT
import { createServer, connect } from "node:net";

const [listenArg, target] = process.argv.slice(2);
const listenPort = Number(listenArg);
const m = /^(.+):(\d+)$/.exec(target ?? "");
if (!Number.isInteger(listenPort) || listenPort <= 0 || listenPort > 65535 || !m) {
  console.error("usage: link.mjs LISTEN_PORT HUB_HOST:HUB_PORT");
  process.exit(2);
}
const [, host, port] = m;
const server = createServer((inbound) => {
  const outbound = connect(Number(port), host);
  const close = () => {
    inbound.destroy();
    outbound.destroy();
  };
  inbound.on("error", close).on("close", close);
  outbound.on("error", close).on("close", close);
  inbound.pipe(outbound);
  outbound.pipe(inbound);
});
server.on("error", (err) => {
  console.error(`link: ${err.message}`);
  process.exit(1);
});
server.listen(listenPort, "127.0.0.1", () => console.log(`link: 127.0.0.1:${listenPort} -> ${host}:${port}`));
process.on("SIGTERM", () => process.exit(0));
