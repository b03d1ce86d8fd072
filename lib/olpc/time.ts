/** OLPC time text, `YYYYMMDDTHHMMSSZ` in UTC, and the one-second comparisons the firmware makes. */
import { OLPC_TIME } from "../../src/validate.js";
import { NEVER_EXPIRES_TEXT } from "./constants.js";
import { fail, show } from "./errors.js";

/** A lease time: an instant, or the explicit "never expires" (`00000000T000000Z`). */
export type OlpcTime = Date | "never";
/** What the signing functions accept: an OlpcTime, or 16-character OLPC time text used exactly as given. */
export type OlpcTimeInput = OlpcTime | string;

/** `YYYYMMDDTHHMMSSZ` in UTC; milliseconds are dropped (the format has none). */
export function formatOlpcTime(time: OlpcTime): string {
  if (time === "never") return NEVER_EXPIRES_TEXT;
  if (!(time instanceof Date) || Number.isNaN(time.getTime())) throw fail("time is not a valid Date");
  const year = time.getUTCFullYear();
  // Year 0000 would collide with the never-expires text; five-digit years do not fit the format.
  if (year < 1 || year > 9999) throw fail(`year ${year} cannot be written as an OLPC time (0001-9999)`);
  const two = (n: number) => String(n).padStart(2, "0");
  return (
    String(year).padStart(4, "0") +
    two(time.getUTCMonth() + 1) +
    two(time.getUTCDate()) +
    "T" +
    two(time.getUTCHours()) +
    two(time.getUTCMinutes()) +
    two(time.getUTCSeconds()) +
    "Z"
  );
}

/**
 * Reads `YYYYMMDDTHHMMSSZ` (UTC). Returns "never" for `00000000T000000Z` and
 * undefined for anything else that is not a real calendar instant (month 1-12,
 * day within the month, hour 0-23, minute and second 0-59).
 */
export function parseOlpcTime(text: string): OlpcTime | undefined {
  if (text === NEVER_EXPIRES_TEXT) return "never";
  if (!OLPC_TIME.test(text)) return undefined;
  const at = (from: number, to: number) => Number(text.slice(from, to));
  const [year, month, day, hour, minute, second] = [at(0, 4), at(4, 6), at(6, 8), at(9, 11), at(11, 13), at(13, 15)];
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  // Day 31 of a 30-day month rolls over into the next month: not a real date.
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined;
  return date;
}

/** The text to sign for a time input; strings are checked and kept byte for byte. */
export function olpcTimeText(field: string, time: OlpcTimeInput): string {
  if (typeof time === "string" && time !== "never") {
    if (parseOlpcTime(time) === undefined) throw fail(`${field} ${show(time)} is not an OLPC time (YYYYMMDDTHHMMSSZ, UTC)`);
    return time;
  }
  return formatOlpcTime(time);
}

/** Whether `time` has passed at `now`, at the one-second resolution of the format. */
export function hasPassed(time: OlpcTime, now: Date): boolean {
  if (time === "never") return false;
  return Math.floor(now.getTime() / 1000) > Math.floor(time.getTime() / 1000);
}

/** Refuses a `now` that is not a real instant: a caller error, not a record problem. */
export function checkNow(now: Date): void {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw fail("now is not a valid Date");
}
