/**
 * The TLS port's server: the school's key and certificate chain from
 * `<root>/tls/` (src/tls.ts owns the paths; `sugar-server tls init` writes
 * them), TLS 1.2 at least, and client certificates asked for and checked
 * against the district CA as `tls-client-auth` says:
 *
 *   off       not asked for
 *   optional  asked for; one that verifies is a login, none is anonymous, one
 *             that does not verify is refused per request (identify.ts)
 *   required  a client without one that verifies does not finish the handshake
 *
 * A client that speaks plain HTTP to this port is told so in one short
 * HTTP/1.1 400 before anything else is read (its first byte is not a TLS
 * handshake record), instead of waiting for a handshake that never comes.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { constants } from "node:crypto";
import type { TLSSocket } from "node:tls";
import type { Config } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import { tlsPaths } from "../../src/tls.js";

export interface TlsSettings {
  key: Buffer;
  /** The school's certificate followed by the CA chain. */
  cert: Buffer;
  /** The district CA certificate that client certificates must chain to; absent with client auth off. */
  ca?: Buffer;
  clientAuth: Config["tls-client-auth"];
}

/** A TLS record of type handshake: every TLS ClientHello starts with it. */
const TLS_HANDSHAKE = 0x16;
/** How long a new connection has to send its first byte, and to finish the handshake. */
const FIRST_BYTE_MS = 10_000;
const PLAIN_REFUSAL = "this port speaks TLS: use https://\n";
/** How long a refused plain-HTTP client has to read its 400 before the connection is closed. */
const REFUSAL_GRACE_MS = 2000;

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new SugarError("invalid_config", `https-port is set, but this school has no ${what} yet (<root>/tls/): run \`sugar-server tls init\` first`, { cause: err });
    }
    throw new SugarError("invalid_config", `https-port: cannot read the school's ${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** The key, chain and CA the TLS port needs; invalid_config, naming `tls init`, when they are not there. */
export function loadTls(config: Config): TlsSettings {
  const paths = tlsPaths(config);
  const clientAuth = config["tls-client-auth"];
  return {
    key: read(paths.key, "TLS key (server.key)"),
    cert: read(paths.cert, "TLS certificate (server.crt)"),
    ...(clientAuth !== "off" ? { ca: read(paths.ca, "district CA certificate (ca.crt), which client certificates are checked against,") } : {}),
    clientAuth,
  };
}

/** The key, chain and CA of a secure context (at start, and again for a renewed certificate). */
export function secureContextOf(settings: TlsSettings): { key: Buffer; cert: Buffer; ca?: Buffer; secureOptions: number } {
  // No renegotiation: a client could otherwise present a second certificate that nothing verifies (TLS 1.2).
  return { key: settings.key, cert: settings.cert, ...(settings.ca ? { ca: settings.ca } : {}), secureOptions: constants.SSL_OP_NO_RENEGOTIATION };
}

/** An HTTPS server with these settings whose plain-HTTP clients get a 400 at once. */
export function createTlsServer(settings: TlsSettings, log: Logger, onRequest: (req: IncomingMessage, res: ServerResponse) => void): Server {
  let server: Server;
  try {
    server = createServer(
      {
        ...secureContextOf(settings),
        minVersion: "TLSv1.2",
        handshakeTimeout: FIRST_BYTE_MS,
        requestCert: settings.clientAuth !== "off",
        rejectUnauthorized: settings.clientAuth === "required",
      },
      onRequest,
    );
  } catch (err) {
    throw new SugarError("invalid_config", `https-port: the school's TLS key and certificate do not load (${(err as Error).message}); run \`sugar-server tls init\` again`, { cause: err });
  }
  // tls.Server starts the handshake in its one "connection" listener: the first byte is looked at before it runs.
  const handshake = server.listeners("connection");
  server.removeAllListeners("connection");
  server.on("connection", (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), FIRST_BYTE_MS);
    const onError = () => clearTimeout(timer);
    socket.once("error", onError);
    const peek = () => {
      const first = socket.read(1) as Buffer | null;
      if (first === null) {
        // Gone before saying anything: nothing to answer.
        if (socket.readableEnded) return socket.destroy();
        return socket.once("readable", peek);
      }
      clearTimeout(timer);
      socket.off("error", onError);
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE) {
        for (const l of handshake) (l as (s: Socket) => void).call(server, socket);
        return;
      }
      refusePlain(socket);
    };
    peek();
  });
  // And refused per connection too, whatever the OpenSSL build makes of the option.
  server.on("secureConnection", (socket: TLSSocket) => socket.disableRenegotiation());
  // A refused handshake (an old protocol version, no or a bad certificate under `required`) is the client's problem.
  server.on("tlsClientError", (err, socket) => {
    log.debug(`TLS handshake refused from ${socket.remoteAddress ?? "?"}: ${err.message}`);
  });
  return server;
}

/** One short 400 for a client that is not speaking TLS; what else it sent is read and dropped until it goes. */
function refusePlain(socket: Socket): void {
  const body = Buffer.from(PLAIN_REFUSAL);
  // A client that resets instead of reading its 400 has heard all it will: nothing to report.
  socket.on("error", () => socket.destroy());
  // A fixed deadline, not an idle timeout: a client dribbling bytes must not hold a connection slot.
  setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS).unref();
  socket.resume();
  socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${PLAIN_REFUSAL}`);
}
