/** Command-line parsing driven by the option table in src/config.ts. */
import { SugarError } from "../errors.js";
import { isOptionName, optionKind } from "../config.js";

export interface ParsedArgs {
  command: string | undefined;
  positionals: string[];
  /** Options for the config layer: name → text. */
  options: Map<string, string>;
  configFile: string | undefined;
  /** Flags a command takes besides config options (e.g. `keyring init --lease-key`). */
  flags: Set<string>;
  /** Values of a command's own repeatable options (`tls init --name A --name B,C`): name → every value. */
  values: Map<string, string[]>;
  help: boolean;
  version: boolean;
}

/**
 * `--name value`, `--name=value`, bare `--flag` for booleans (`--no-flag` for
 * false). `commandFlags` are extra boolean flags the command accepts,
 * `commandValues` its own options that take a value and may repeat.
 */
export function parseArgs(argv: readonly string[], commandFlags: ReadonlySet<string> = new Set(), commandValues: ReadonlySet<string> = new Set()): ParsedArgs {
  const out: ParsedArgs = { command: undefined, positionals: [], options: new Map(), configFile: undefined, flags: new Set(), values: new Map(), help: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-h" || arg === "--help") {
      out.help = true;
      continue;
    }
    if (arg === "--version") {
      out.version = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      if (out.command === undefined) out.command = arg;
      else out.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    if (commandFlags.has(name)) {
      out.flags.add(name);
      continue;
    }
    if (commandValues.has(name)) {
      const v = inline ?? argv[++i];
      if (v === undefined || v === "") throw new SugarError("invalid_config", `--${name} needs a value`);
      out.values.set(name, [...(out.values.get(name) ?? []), ...v.split(",").map((s) => s.trim()).filter(Boolean)]);
      continue;
    }
    if (name === "config") {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new SugarError("invalid_config", "--config needs a file name");
      out.configFile = v;
      continue;
    }
    const negated = name.startsWith("no-") ? name.slice(3) : "";
    if (isOptionName(negated) && optionKind(negated) === "bool" && inline === undefined) {
      out.options.set(negated, "false");
      continue;
    }
    if (!isOptionName(name)) throw new SugarError("invalid_config", `unknown option --${name} (see sugar-server --help)`);
    if (optionKind(name) === "bool" && inline === undefined) {
      out.options.set(name, "true");
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new SugarError("invalid_config", `--${name} needs a value`);
    out.options.set(name, v);
  }
  return out;
}
