/** Loopback ports for test servers: a free one, and whether one accepts connections yet. */
import { connect, createServer } from "node:net";

/**
 * A port on 127.0.0.1 that was free a moment ago. Another process may take
 * it before the caller binds it, so a server that fails with "address in
 * use" should be started again on a new one (startNginx and startCaddy do).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** True once something on 127.0.0.1:port accepts a TCP connection. */
export function acceptsTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on("connect", () => done(true));
    sock.on("error", () => done(false));
  });
}
