/** The backup actor's side of the spool (events.ts): watch, handle in order, delete. */
import { watch, promises as fsp, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { describe } from "../../src/errors.js";
import { ensureDir, removeFileDurable } from "../../src/fs.js";
import type { Logger } from "../../src/log.js";
import { SPOOL_NAME, parseSpoolEvent, type SpoolEvent } from "./events.js";

/**
 * Watches the spool directory and hands each event to `handle`, oldest
 * first, one at a time; the file is deleted once handled. A handler failure
 * is logged and the event dropped (the next backup redoes its work), so one
 * bad event never blocks the ones after it.
 */
export class SpoolWatcher {
  private watcher: FSWatcher | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;

  constructor(
    readonly dir: string,
    private readonly handle: (ev: SpoolEvent) => Promise<void>,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await ensureDir(this.dir, 0o700);
    this.watcher = watch(this.dir, () => this.kick());
    this.watcher.on("error", (err) => this.log.error(`watching ${this.dir}: ${describe(err)}`));
    this.kick();
    await this.running;
  }

  /** Scans now, or again right after the scan in progress. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    this.running = this.loop().finally(() => (this.running = undefined));
  }

  /** Resolves when no scan is running or queued (for tests and stop). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    await this.idle();
  }

  private async loop(): Promise<void> {
    do {
      this.dirty = false;
      try {
        await this.scan();
      } catch (err) {
        this.log.error(`scanning ${this.dir}: ${describe(err)}`);
      }
    } while (this.dirty && !this.stopped);
  }

  private async scan(): Promise<void> {
    const names = (await fsp.readdir(this.dir)).filter((n) => !n.startsWith(".")).sort();
    for (const name of names) {
      if (this.stopped) return;
      const file = join(this.dir, name);
      if (!SPOOL_NAME.test(name)) {
        this.log.warn(`spool: removing ${name}: not an event file name`);
        await removeFileDurable(file);
        continue;
      }
      let ev: SpoolEvent;
      try {
        ev = parseSpoolEvent(await fsp.readFile(file, "utf8"));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        this.log.warn(`spool: removing ${name}: ${describe(err)}`);
        await removeFileDurable(file);
        continue;
      }
      try {
        await this.handle(ev);
      } catch (err) {
        this.log.error(`spool: ${ev.direction} event of ${ev.uid} failed: ${describe(err)}`);
      }
      await removeFileDurable(file);
    }
  }
}
