/**
 * Multi-lease files, as OLPC's tools write them for a whole deployment: split
 * into lines without judging them, so the importer can keep the good ones
 * and report each refused one with its reason.
 */
import { fail, show } from "./errors.js";

/** One line of a multi-lease file, where it came from, not yet checked. */
export interface LeaseFileEntry {
  /** The SN the entry is filed under: the JSON key, or the line's second field (undefined if it has none). */
  sn: string | undefined;
  /** The line without its LF (a CR before the LF is dropped too); not yet checked: pass it to parseLeaseLine. */
  line: string;
  /** 1-based line number in the file, or within the JSON value. */
  lineNo: number;
  /** The JSON key the line came from (cjson files only). */
  key?: string;
  /** Where the line came from, for import reports: `line 3` or `"SHF706002A7" line 1`. */
  where: string;
}

/** A multi-lease file, split: which of the two forms it was, and its lines. */
export interface LeaseFile {
  format: "lines" | "cjson";
  entries: LeaseFileEntry[];
}

/**
 * Splits a multi-lease file into its lines. Two forms: concatenated lines
 * (blank lines skipped), and compact JSON `[1,{"<SN>":"<lines, each ending \n>",…}]`
 * from format_as_cjson_leases.py, read with a real JSON parser (any whitespace).
 * In cjson files the caller should also check that each line's SN equals its key.
 * Throws LeaseFormatError only when the file as a whole cannot be read.
 */
export function splitMultiLeaseFile(text: string): LeaseFile {
  if (typeof text !== "string") throw fail("lease file is not text");
  const body = text.startsWith("\ufeff") ? text.slice(1) : text;
  if (body.trimStart().startsWith("[")) return { format: "cjson", entries: splitCjson(body) };
  const entries: LeaseFileEntry[] = [];
  splitLines(body).forEach((line, i) => {
    if (line.trim() === "") return;
    entries.push({ sn: secondField(line), line, lineNo: i + 1, where: `line ${i + 1}` });
  });
  return { format: "lines", entries };
}

/** Lines without their terminators; a CRLF file (edited on Windows) yields the same lines as LF. */
function splitLines(text: string): string[] {
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

function secondField(line: string): string | undefined {
  const field = line.split(" ")[1];
  return field === undefined || field === "" ? undefined : field;
}

function splitCjson(text: string): LeaseFileEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw fail(`lease file starts with "[" but is not valid JSON: ${(cause as Error).message}`, cause);
  }
  if (!Array.isArray(data) || data.length !== 2 || data[0] !== 1) {
    throw fail('JSON lease file must be [1, {"<SN>": "<lease lines>", …}]');
  }
  const map: unknown = data[1];
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw fail('JSON lease file must be [1, {"<SN>": "<lease lines>", …}]: the second element is not an object');
  }
  const entries: LeaseFileEntry[] = [];
  for (const [key, value] of Object.entries(map)) {
    if (typeof value !== "string") throw fail(`JSON lease file: the value for ${show(key)} is not a string`);
    splitLines(value).forEach((line, i) => {
      if (line.trim() === "") return;
      entries.push({ sn: key, line, lineNo: i + 1, key, where: `${JSON.stringify(key)} line ${i + 1}` });
    });
  }
  return entries;
}
