/** The one error of the OLPC formats, and the helpers every module here builds it with. */
import { SugarError } from "../../src/errors.js";

/** A lease, delegation, key or time that is not in the exact form the firmware accepts. */
export class LeaseFormatError extends SugarError {
  override readonly name: string = "LeaseFormatError";
  override readonly code = "invalid_input" as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super("invalid_input", message, options);
  }
}

/** A LeaseFormatError, with its cause when there is one. */
export const fail = (message: string, cause?: unknown) =>
  new LeaseFormatError(message, cause === undefined ? undefined : { cause });

/** Shows a value in an error message without flooding it (signatures are 512 characters). */
export const show = (value: string) => JSON.stringify(value.length > 24 ? `${value.slice(0, 24)}…` : value);
