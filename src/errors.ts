/**
 * The one error catalogue. Every failure that crosses the bus, reaches a
 * client or ends a command carries one of these codes; each adapter maps them
 * to its protocol in a single function. The list is closed: a code that is
 * not here is a bug.
 */
export const ERROR_CODES = [
  "invalid_input", // the request is malformed: bad identifier, key, size, encoding
  "too_large", // the request is bigger than the listener accepts (a body over its limit)
  "not_registered", // the uid is unknown at this site
  "unknown_machine", // the serial number is not known to the server (hardware model, leases)
  "not_found", // a named item does not exist
  "stolen", // the machine is on the stolen list
  "forbidden", // the request is well-formed but not allowed (a valid proof of another client)
  "auth_required", // no proof of the client was presented: log in first
  "auth_expired", // a token that was valid has run out: log in again
  "auth_invalid", // a proof that is altered, unknown, revoked, reused or malformed
  "rate_limited", // too many failed attempts from one source: wait a minute
  "disk_full", // the server has no room left to store the request
  "busy", // try again later (no free backup slot, load, disk)
  "unavailable", // nobody serves that subject, or a dependency is down
  "timeout", // the bus did not answer in time
  "conflict", // the state changed under the request (a lock is held)
  "internal", // a bug or an I/O failure on the server side
  "invalid_config", // the server's own configuration is unusable (a bad option, an unreadable config file); never a client's fault
  "listen_failed", // a listener cannot bind its address (port in use, privilege missing)
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}

/**
 * An error with a stable code and the cause behind it. Its message is for the
 * person who made the request; adapters still hide the messages of the
 * server's own failures (`internal`, ...), which may name files.
 */
export class SugarError extends Error {
  override readonly name: string = "SugarError";
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** `listen_failed`, and whether a missing privilege (CAP_NET_BIND_SERVICE) is the reason: then `start` may go on without that listener. */
export class ListenError extends SugarError {
  override readonly name = "ListenError";
  /** The port needs a privilege this process lacks. */
  readonly privileged: boolean;
  constructor(message: string, options?: { cause?: unknown; privileged?: boolean }) {
    super("listen_failed", message, options);
    this.privileged = options?.privileged ?? false;
  }
}

/** Wraps anything thrown into a SugarError; unknown failures become `internal`. */
export function toSugarError(err: unknown): SugarError {
  if (err instanceof SugarError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SugarError("internal", message, { cause: err });
}

/** One line for a log: the code and message of a SugarError, the stack of anything else. */
export function describe(err: unknown): string {
  if (err instanceof SugarError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.stack ?? err.message;
  return String(err);
}
