/**
 * "Who is this request?", one answer for every place that asks: the REST
 * guard, the web's forward auth and pages, and the admin rule. What a
 * request presents — cookies, an xoid, the X-Sugar-* token headers, a TLS
 * client certificate — goes to the auth actor, which decides (op `check`
 * for all of them, op `certificate` for a certificate alone); nothing here
 * decides who anyone is. Each answer is asked for at most once per request.
 *
 * A client certificate counts only when it verified against the district CA
 * on the TLS port (`socket.authorized`); one that did not is refused by the
 * listener before any handler runs (`certificateRefusal`).
 */
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { TLSSocket } from "node:tls";
import { TOKEN_HEADERS, type AuthClient } from "../../src/codec.js";
import type { Config } from "../../src/config.js";
import { SugarError } from "../../src/errors.js";
import { COOKIE, ours, readCookies } from "./cookies.js";

/** The four token headers as the client sent them. */
export interface TokenHeaders {
  uid: string;
  time: string;
  lifetime: string;
  auth: string;
}

/** One header's value; node lower-cases header names, and a repeated one counts as absent. */
const one = (headers: IncomingHttpHeaders, name: string): string => {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? (v.length === 1 ? v[0]! : "") : (v ?? "");
};

/** The token headers a request carries, or undefined when it carries none. */
export function tokenFrom(headers: IncomingHttpHeaders): TokenHeaders | undefined {
  const p = { uid: one(headers, TOKEN_HEADERS.uid), time: one(headers, TOKEN_HEADERS.time), lifetime: one(headers, TOKEN_HEADERS.lifetime), auth: one(headers, TOKEN_HEADERS.auth) };
  return p.uid || p.time || p.lifetime || p.auth ? p : undefined;
}

/** The client certificate a TLS client presented. */
export interface PeerCertificate {
  /** It verified against the district CA: chain and dates. */
  authorized: boolean;
  /** OpenSSL's reason when it did not (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...). */
  error: string;
  /** The subject CN: the uid it names (unchecked). */
  cn: string;
  /** The subject O: the site the district CA issued it for (unchecked). */
  o: string;
  serial: string;
  /** ISO-8601, or "" when unreadable. */
  notBefore: string;
}

/** The client certificate of a request on the TLS port, or undefined (plain port, or none presented). */
export function peerCertificate(req: IncomingMessage): PeerCertificate | undefined {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket)) return undefined;
  // The TLS port refuses renegotiation (adapters/kit/tls.ts): what the handshake verified is what every request of the connection presents.
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const cn = cert.subject?.CN;
  const o = cert.subject?.O;
  const from = Date.parse(cert.valid_from ?? "");
  return {
    authorized: socket.authorized,
    error: socket.authorized ? "" : String(socket.authorizationError ?? "unknown"),
    cn: typeof cn === "string" ? cn : "",
    o: typeof o === "string" ? o : "",
    serial: cert.serialNumber ?? "",
    notBefore: Number.isNaN(from) ? "" : new Date(from).toISOString(),
  };
}

/** Why a presented certificate that did not verify is refused: a 401 with words the client can act on, not anonymity. */
export function certificateRefusal(peer: PeerCertificate): SugarError {
  const why =
    peer.error === "CERT_HAS_EXPIRED"
      ? "your client certificate has expired"
      : peer.error === "CERT_NOT_YET_VALID"
        ? "your client certificate is not valid yet"
        : `your client certificate is not from this school district's CA (${peer.error})`;
  return new SugarError("auth_invalid", `${why}; connect without it, or with one this district issued (POST /client/certificate)`);
}

export interface Identity {
  uid: string;
  level: "device" | "token" | "xoid";
  /** A renewed sugar_session value, to be set on this response. */
  session: string;
  sessionExpires: string;
}

/** Who one request is, asked lazily. */
export interface RequestIdentity {
  /** Its TLS client certificate, verified or not; undefined on a plain port or without one. */
  readonly peer: PeerCertificate | undefined;
  /**
   * The uid its verified client certificate logs in as; undefined without
   * one. Rejects with auth_invalid when the auth actor refuses it (a removed
   * uid) or it did not verify.
   */
  certificate(): Promise<string | undefined>;
  /**
   * Who it is by everything it presents (cookies, token headers, client
   * certificate, xoid), as the auth actor's `check` orders them; undefined
   * for nobody, or for values that are stale or refused.
   */
  browser(): Promise<Identity | undefined>;
}

/** Errors of `check` that mean "nobody" rather than "the server cannot tell". */
const nobody = (err: unknown) => err instanceof SugarError && (err.code.startsWith("auth_") || err.code === "not_registered" || err.code === "invalid_input");

export function identifier(config: Config, auth: AuthClient): (req: IncomingMessage) => RequestIdentity {
  return (req) => {
    const peer = peerCertificate(req);
    const certificateRequest = peer?.authorized ? { uid: peer.cn, site: peer.o, serial: peer.serial, notBefore: peer.notBefore } : undefined;
    let cert: Promise<string | undefined> | undefined;
    let browser: Promise<Identity | undefined> | undefined;
    return {
      peer,
      certificate: () =>
        (cert ??= (async () => {
          if (!peer) return undefined;
          if (!certificateRequest) throw certificateRefusal(peer);
          return (await auth.call("certificate", certificateRequest)).uid ?? undefined;
        })()),
      browser: () =>
        (browser ??= (async () => {
          const cookies = readCookies(req.headers);
          const token = tokenFrom(req.headers);
          const session = ours(cookies, COOKIE.session);
          const device = ours(cookies, COOKIE.device);
          const xoid = config["xoid-login"] === "on" ? (cookies.get(COOKIE.xoid) ?? "") : "";
          if (!session && !device && !xoid && !token && !certificateRequest) return undefined;
          try {
            const r = await auth.call("check", { session, device, xoid, token: token ?? null, certificate: certificateRequest ?? null });
            const level = r.level === "device" || r.level === "token" || r.level === "xoid" ? r.level : undefined;
            if (!r.uid || !level) return undefined;
            return { uid: r.uid, level, session: r.session ?? "", sessionExpires: r.sessionExpires ?? "" };
          } catch (err) {
            if (nobody(err)) return undefined;
            throw err;
          }
        })()),
    };
  };
}
