/**
 * The processes of a process group, read from /proc (Linux): how a test
 * proves that a server it stopped left nothing behind (nginx's workers,
 * Chromium's renderers and zygotes), zombies included.
 */
import { readdirSync, readFileSync } from "node:fs";

export interface ProcessInfo {
  readonly pid: number;
  /** The kernel's one-letter state: R, S, D, Z (zombie), ... */
  readonly state: string;
  /** The executable's short name (/proc/PID/stat's comm). */
  readonly comm: string;
  /** The parent: a zombie whose parent is init (1, or a subreaper) is init's to reap, not the test's. */
  readonly ppid: number;
}

/** Every process (zombies too) whose process group is `pgid`. */
export function processGroup(pgid: number): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // the process ended between readdir and read: not in any group any more
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ")".
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const [state, ppid, pgrp] = stat.slice(close + 2).split(" ");
    if (Number(pgrp) === pgid) out.push({ pid: Number(name), state: state ?? "?", comm, ppid: Number(ppid) });
  }
  return out;
}

/** The group's processes that still run (not zombies). */
export function livingInGroup(pgid: number): ProcessInfo[] {
  return processGroup(pgid).filter((p) => p.state !== "Z");
}
