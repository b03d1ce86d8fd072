/**
 * Reads an XML-RPC methodCall (specs.xmlrpc.com/spec) with `saxes`, a
 * maintained streaming XML parser: the element tree of the call, then its
 * method name and parameter values. The `xmlrpc` package's deserializer did
 * this through a stream and the older `sax`, at about 75 µs a Sugar
 * register() call against saxes's 5 (measured on this project's bench
 * machine); its serializer still writes every answer.
 *
 * What is refused (a `Malformed` error, answered with fault -32700): XML
 * that does not parse, any document type declaration (entity tricks live
 * there; no call needs one), anything but one methodCall with a methodName
 * and optional params, a value of an unknown type, a scalar that is not of
 * its type, nesting deeper than MAX_DEPTH.
 */
import { SaxesParser } from "saxes";

/** An XML-RPC value, as the spec's types map to JavaScript. */
export type XmlrpcValue = string | number | boolean | null | Date | Buffer | XmlrpcValue[] | { [name: string]: XmlrpcValue };

export class Malformed extends Error {}

/** Elements deeper than this are refused (a call nests values, not documents). */
export const MAX_DEPTH = 64;

interface Element {
  name: string;
  children: Element[];
  /** Every text (and CDATA) directly inside it, in order. */
  text: string;
}

/** The element tree of one document: its root. */
function tree(xml: string): Element {
  const parser = new SaxesParser();
  const root: Element = { name: "", children: [], text: "" };
  const stack: Element[] = [root];
  parser.on("error", (err) => {
    throw new Malformed(err.message);
  });
  parser.on("doctype", () => {
    throw new Malformed("a <!DOCTYPE> is not accepted");
  });
  parser.on("opentag", (tag) => {
    if (stack.length > MAX_DEPTH) throw new Malformed(`elements nested deeper than ${MAX_DEPTH}`);
    const e: Element = { name: tag.name, children: [], text: "" };
    stack.at(-1)!.children.push(e);
    stack.push(e);
  });
  parser.on("closetag", () => void stack.pop());
  parser.on("text", (t) => void (stack.at(-1)!.text += t));
  parser.on("cdata", (t) => void (stack.at(-1)!.text += t));
  parser.write(xml).close();
  if (root.children.length !== 1) throw new Malformed("not one document element");
  return root.children[0]!;
}

const blank = (s: string) => /^[ \t\r\n]*$/.test(s);

/** An element that holds only elements (whitespace between them is layout). */
function structural(e: Element): Element[] {
  if (!blank(e.text)) throw new Malformed(`text inside <${e.name}>`);
  return e.children;
}

function only(e: Element, name: string): Element {
  const kids = structural(e);
  if (kids.length !== 1 || kids[0]!.name !== name) throw new Malformed(`<${e.name}> must hold one <${name}>`);
  return kids[0]!;
}

function leaf(e: Element): string {
  if (e.children.length) throw new Malformed(`<${e.name}> holds elements`);
  return e.text;
}

const INT = /^[+-]?[0-9]+$/;
/** One way to match each text: `[0-9]+\.?[0-9]*` split a run of digits every way before failing (quadratic: 6.5 s for a 64 KB body). */
const DOUBLE = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/;
const BASE64 = /^[A-Za-z0-9+/=\s]*$/;
const ISO8601 = /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/;

function value(e: Element): XmlrpcValue {
  if (e.name !== "value") throw new Malformed(`<${e.name}> where a <value> belongs`);
  // No type element: the text is a string, whitespace and all.
  if (e.children.length === 0) return e.text;
  const t = only(e, e.children[0]!.name);
  switch (t.name) {
    case "string":
      return leaf(t);
    case "int":
    case "i4":
    case "i8": {
      const s = leaf(t).trim();
      const n = Number(s);
      if (!INT.test(s) || !Number.isSafeInteger(n)) throw new Malformed(`<${t.name}> ${JSON.stringify(s.slice(0, 32))} is not an integer`);
      return n;
    }
    case "boolean": {
      const s = leaf(t).trim();
      if (s !== "0" && s !== "1") throw new Malformed("<boolean> must be 0 or 1");
      return s === "1";
    }
    case "double": {
      const s = leaf(t).trim();
      if (!DOUBLE.test(s)) throw new Malformed(`<double> ${JSON.stringify(s.slice(0, 32))} is not a number`);
      return Number(s);
    }
    case "dateTime.iso8601": {
      const s = leaf(t).trim();
      const m = ISO8601.exec(s);
      if (!m) throw new Malformed(`<dateTime.iso8601> ${JSON.stringify(s.slice(0, 32))} is not a date`);
      const d = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${m[7] ?? ""}${m[8] ?? "Z"}`);
      if (Number.isNaN(d.getTime())) throw new Malformed(`<dateTime.iso8601> ${JSON.stringify(s.slice(0, 32))} is not a date`);
      return d;
    }
    case "base64": {
      const s = leaf(t);
      if (!BASE64.test(s)) throw new Malformed("<base64> is not base64");
      return Buffer.from(s, "base64");
    }
    case "nil":
      if (leaf(t) !== "") throw new Malformed("<nil/> holds text");
      return null;
    case "array":
      return structural(only(t, "data")).map(value);
    case "struct": {
      const out: { [name: string]: XmlrpcValue } = Object.create(null);
      for (const m of structural(t)) {
        const kids = m.name === "member" ? structural(m) : [];
        const name = kids.find((k) => k.name === "name");
        const v = kids.find((k) => k.name === "value");
        if (kids.length !== 2 || !name || !v) throw new Malformed("a <struct> member must hold one <name> and one <value>");
        out[leaf(name)] = value(v);
      }
      return out;
    }
    default:
      throw new Malformed(`unknown value type <${t.name.slice(0, 40)}>`);
  }
}

/** The method name and parameters of a methodCall; `Malformed` when it is not one. */
export function readCall(xml: string): { method: string; params: XmlrpcValue[] } {
  const call = tree(xml);
  if (call.name !== "methodCall") throw new Malformed(`the document is <${call.name.slice(0, 40)}>, not <methodCall>`);
  const kids = structural(call);
  const name = kids[0];
  if (!name || name.name !== "methodName") throw new Malformed("no <methodName>");
  const method = leaf(name).trim();
  if (!method) throw new Malformed("an empty <methodName>");
  if (kids.length > 2 || (kids[1] && kids[1].name !== "params")) throw new Malformed("a <methodCall> holds a <methodName> and at most one <params>");
  const params = (kids[1] ? structural(kids[1]) : []).map((p) => {
    if (p.name !== "param") throw new Malformed(`<${p.name.slice(0, 40)}> inside <params>`);
    return value(only(p, "value"));
  });
  return { method, params };
}
