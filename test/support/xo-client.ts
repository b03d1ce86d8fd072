/**
 * An activation client that behaves like the XO initramfs on TCP port 191
 * (the XO activation initramfs): connect, send the bytes (normally the 11-byte SN, no LF),
 * shut down the write side, then read until the server closes.
 *
 * The real XO reads with no timeout; tests need a bound, so `timeoutMs` (default
 * 10 s, counted from the start) ends the attempt with `closedBy: "timeout"`.
 */
import { connect, type Socket } from "node:net";

export interface XoActivateOptions {
  host: string;
  port: number;
  /**
   * Bytes to send. `undefined` = connect and send nothing (and, unless `halfClose`
   * says otherwise, keep the write side open), for server timeout tests.
   */
  payload?: string | Buffer;
  /** Shut down the write side after sending. Default: true when a payload is given, else false. */
  halfClose?: boolean;
  localAddress?: string;
  timeoutMs?: number;
}

export interface XoActivateResult {
  /** Everything the server sent. */
  bytes: Buffer;
  /** `server`: the server closed its side (EOF); `timeout`: our deadline; `error`: connect or socket error. */
  closedBy: "server" | "timeout" | "error";
  error?: Error;
  /** Whether the TCP connection was established. */
  connected: boolean;
  elapsedMs: number;
}

export function xoActivate(opts: XoActivateOptions): Promise<XoActivateResult> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const halfClose = opts.halfClose ?? opts.payload !== undefined;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let connected = false;
    let settled = false;
    const socket: Socket = connect({
      host: opts.host,
      port: opts.port,
      ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}),
    });

    const finish = (closedBy: XoActivateResult["closedBy"], error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const result: XoActivateResult = {
        bytes: Buffer.concat(chunks),
        closedBy,
        connected,
        elapsedMs: Date.now() - started,
      };
      if (error !== undefined) result.error = error;
      resolve(result);
    };

    const timer = setTimeout(() => finish("timeout"), timeoutMs);

    socket.on("connect", () => {
      connected = true;
      if (opts.payload !== undefined) socket.write(opts.payload);
      if (halfClose) socket.end();
    });
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", () => finish("server"));
    socket.on("error", (err: Error) => finish("error", err));
    socket.on("close", () => finish("server"));
  });
}
