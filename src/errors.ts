/**
 * The one error catalogue. Every failure that crosses the bus or reaches a
 * client carries one of these codes; each adapter maps them to its protocol
 * in a single function. The list is closed: a code that is not here is a bug.
 */
export const ERROR_CODES = [
  "invalid_input", // the request is malformed: bad identifier, key, size, encoding
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
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}

/** An error with a stable code, safe to show to a client, and the cause behind it. */
export class SugarError extends Error {
  override readonly name: string = "SugarError";
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Raised by config parsing: names the key and where it came from. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "invalid_config";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Wraps anything thrown into a SugarError; unknown failures become `internal`. */
export function toSugarError(err: unknown): SugarError {
  if (err instanceof SugarError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SugarError("internal", message, { cause: err });
}

export const invalid = (message: string) => new SugarError("invalid_input", message);
