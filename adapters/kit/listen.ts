/**
 * Binding listeners, with errors a person can act on: which option names the
 * port, and how to get a privileged port without running as root. A failure
 * is ListenError (src/errors.ts): `listen_failed`, and whether a privilege is
 * what is missing.
 */
import type { Server as HttpServer } from "node:http";
import type { Server as NetServer } from "node:net";
import { formatAddress } from "../../src/component.js";
import { ListenError } from "../../src/errors.js";

/** Listens on host:port; `option` is the config key that names the port. Resolves with the bound address. */
export async function listen(
  server: NetServer | HttpServer,
  host: string,
  port: number,
  option: string,
  backlog?: number,
): Promise<{ host: string; port: number }> {
  try {
    await tryListen(server, host, port, backlog);
  } catch (err) {
    // A host with IPv6 switched off cannot bind "::"; every IPv4 address is what "::" meant there.
    if (host === "::" && (err as NodeJS.ErrnoException).code === "EAFNOSUPPORT") await tryListen(server, "0.0.0.0", port, backlog).catch((e) => failed(e, "0.0.0.0", port, option));
    else failed(err, host, port, option);
  }
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new ListenError(`${option}: listener has no TCP address`);
  return { host: addr.address, port: addr.port };
}

function tryListen(server: NetServer | HttpServer, host: string, port: number, backlog: number | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen({ host, port, ipv6Only: false, ...(backlog !== undefined ? { backlog } : {}) }, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

function failed(err: unknown, host: string, port: number, option: string): never {
  const code = (err as NodeJS.ErrnoException).code;
  const where = formatAddress({ host, port });
  if (code === "EACCES") {
    throw new ListenError(
      `cannot listen on ${where} (${option}): port ${port} needs a privilege this user lacks; ` +
        `grant it with "sudo setcap cap_net_bind_service=+ep ${process.execPath}" or systemd AmbientCapabilities=CAP_NET_BIND_SERVICE, or set ${option} to a port above 1023`,
      { cause: err, privileged: true },
    );
  }
  if (code === "EADDRINUSE") throw new ListenError(`cannot listen on ${where} (${option}): the port is in use; stop the other program or change ${option}`, { cause: err });
  if (code === "EADDRNOTAVAIL") throw new ListenError(`cannot listen on ${where} (${option}): no such address on this machine; change host`, { cause: err });
  throw new ListenError(`cannot listen on ${where} (${option}): ${(err as Error).message}`, { cause: err });
}
