/**
 * Honest skips. A test that needs a real tool (nats-server, sshd, rsync, ...)
 * names it here; when the tool is missing the test is registered as a uvu
 * skip, so the runner's summary line counts it as *skipped*, never as passed.
 * Under `CI=true` a missing tool is a failure instead: CI installs every
 * tool (.ci/run), so a green CI run always means the tests ran.
 *
 * `SUGAR_TEST_WITHOUT=nats-server,sshd` (tool names, comma-separated) makes
 * those tools look absent, to check this very mechanism on a machine that
 * has them all: `SUGAR_TEST_WITHOUT=nats-server,sshd node test/run.mjs`.
 */
import { accessSync, constants } from "node:fs";
import { networkInterfaces } from "node:os";
import { delimiter, join } from "node:path";
import type { Test } from "uvu";

/** A tool a test needs: where it may be and how a newcomer installs it. */
export interface Tool {
  /** What the messages call it. */
  readonly name: string;
  /** File names looked up on $PATH, then absolute paths; the first executable one is used. */
  readonly candidates: readonly string[];
  /** The Debian package that brings it. */
  readonly apt: string;
  /** An environment variable that may name the binary (e.g. NATS_SERVER_BIN). */
  readonly env?: string;
}

export const TOOLS = {
  natsServer: { name: "nats-server", candidates: ["nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"], apt: "nats-server", env: "NATS_SERVER_BIN" },
  sshd: { name: "sshd", candidates: ["/usr/sbin/sshd", "sshd"], apt: "openssh-server" },
  ssh: { name: "ssh", candidates: ["ssh"], apt: "openssh-client" },
  sshKeygen: { name: "ssh-keygen", candidates: ["ssh-keygen"], apt: "openssh-client" },
  rsync: { name: "rsync", candidates: ["rsync"], apt: "rsync" },
  rrsync: { name: "rrsync", candidates: ["/usr/bin/rrsync", "rrsync"], apt: "rsync" },
  openssl: { name: "openssl", candidates: ["openssl"], apt: "openssl", env: "OPENSSL" },
  python3: { name: "python3", candidates: ["python3"], apt: "python3" },
  curl: { name: "curl", candidates: ["curl"], apt: "curl", env: "CURL_BIN" },
  nginx: { name: "nginx", candidates: ["nginx", "/usr/sbin/nginx"], apt: "nginx", env: "NGINX_BIN" },
  caddy: { name: "caddy", candidates: ["caddy", "/usr/bin/caddy"], apt: "caddy", env: "CADDY_BIN" },
  // Debian's /usr/bin/chromium is a launcher script that execs /usr/lib/chromium/chromium with its flags.
  chromium: { name: "chromium", candidates: ["/usr/bin/chromium", "chromium"], apt: "chromium", env: "CHROMIUM_BIN" },
} as const satisfies Record<string, Tool>;

const found = new Map<string, string | undefined>();

/** The tools SUGAR_TEST_WITHOUT names; an unknown name is a mistake worth stopping for. */
function withheld(): ReadonlySet<string> {
  const names = (process.env.SUGAR_TEST_WITHOUT ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const known = new Set<string>(Object.values(TOOLS).map((t) => t.name));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length) throw new Error(`SUGAR_TEST_WITHOUT names no known tool: ${unknown.join(", ")} (known: ${[...known].join(", ")})`);
  return new Set(names);
}

/** The tool's executable, or undefined when it is not installed (or SUGAR_TEST_WITHOUT names it). */
export function toolPath(tool: Tool): string | undefined {
  if (withheld().has(tool.name)) return undefined;
  if (found.has(tool.name)) return found.get(tool.name);
  const fromEnv = tool.env ? process.env[tool.env] : undefined;
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  const places = [
    ...(fromEnv ? [fromEnv] : []),
    ...tool.candidates.flatMap((c) => (c.startsWith("/") ? [c] : dirs.map((d) => join(d, c)))),
  ];
  const hit = places.find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false; // not there or not executable: the next place
    }
  });
  found.set(tool.name, hit);
  return hit;
}

/** The tool's executable for a test registered with `requires(tool)`; a missing one here is a test bug, so it throws. */
export function toolBin(tool: Tool): string {
  const path = toolPath(tool);
  if (!path) throw new Error(`${requires(tool).why}: register this test with testsNeeding(test, requires(TOOLS...))`);
  return path;
}

export interface Requirement {
  /** True when every tool is there. */
  readonly ok: boolean;
  /** The missing tools and how to install them; "" when ok. */
  readonly why: string;
  /**
   * Only a feature the installed tools lack (not something .ci/run can
   * install): skipped even under CI.
   */
  readonly featureOnly?: boolean;
}

/** Whether the tools are installed; under CI the answer is never "skip". */
export function requires(...tools: Tool[]): Requirement {
  const missing = [...new Set(tools)].filter((t) => toolPath(t) === undefined);
  if (missing.length === 0) return { ok: true, why: "" };
  const apt = [...new Set(missing.map((t) => t.apt))].join(" ");
  return { ok: false, why: `${missing.map((t) => t.name).join(", ")} not installed (apt-get install ${apt})` };
}

/** Holds when every one of `reqs` holds; says why each one that does not. */
export function allOf(...reqs: Requirement[]): Requirement {
  const unmet = reqs.filter((r) => !r.ok);
  if (unmet.length === 0) return { ok: true, why: "" };
  return { ok: false, why: unmet.map((r) => r.why).join("; "), featureOnly: unmet.every((r) => r.featureOnly) };
}

/**
 * A feature of an installed tool that no install brings back (e.g. ssh-dss
 * keys on OpenSSH 10): without it the tests are skipped, under CI too.
 */
export function feature(ok: boolean, why: string): Requirement {
  return ok ? { ok: true, why: "" } : { ok: false, why, featureOnly: true };
}

/**
 * An IPv6 link-local address of this machine with its interface
 * (`fe80::…%eth0`), or undefined when no interface has one (some containers):
 * a test that binds one is then skipped, `feature(…)`, since no install
 * brings one.
 */
export function linkLocalAddress(): string | undefined {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const a = addrs?.find((x) => x.family === "IPv6" && /^fe[89ab][0-9a-f]:/i.test(x.address) && !x.internal);
    if (a) return `${a.address.replace(/%.*$/, "")}%${name}`;
  }
  return undefined;
}

/** True in CI, where a missing tool must fail the run. */
export const inCi = () => /^(1|true|yes)$/i.test(process.env.CI ?? "");

/**
 * The uvu test function to register tests with: `test` itself when the
 * requirement holds; otherwise one that registers each test as skipped
 * (counted by the runner), or, under CI, as a failure naming the tool.
 * A suite's hooks still run, so they should check `req.ok` before starting
 * anything that needs the tool.
 */
export function testsNeeding<T>(test: Test<T>, req: Requirement): (name: string, fn: (ctx: T) => void | Promise<void>) => void {
  if (req.ok) return (name, fn) => test(name, fn);
  if (inCi() && !req.featureOnly) {
    return (name) =>
      test(name, () => {
        throw new Error(`${req.why}; CI=true: a missing tool fails the run (.ci/run installs it)`);
      });
  }
  let told = false;
  return (name, fn) => {
    // One line to say why; the runner's summary counts each test as skipped.
    if (!told) console.log(`skipping tests (counted as skipped): ${req.why}`);
    told = true;
    test.skip(name, fn);
  };
}
