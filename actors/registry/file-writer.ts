/**
 * Writes a checkpoint's record files off the event loop. Creating a file is
 * most of a checkpoint's cost (measured: 45% of the server's CPU in a
 * register burst when the event loop did it), and the event loop is what
 * every request waits for; a worker thread does the same system calls on
 * the other core. One thread, started at the first checkpoint, holding the
 * process alive only while it has files to write (a stop's last checkpoint
 * finishes), stopped by close(). Where a thread cannot
 * be started (or dies), the files are written on the event loop instead, a
 * few milliseconds at a time between its turns, as before.
 */
import { Worker } from "node:worker_threads";
import type { Logger } from "../../src/log.js";
import type { WriteReply, WriteRequest } from "./file-writer.worker.js";
import { runFileJob, type FileJob } from "./record-file.js";

/** How long the event-loop fallback writes files before it lets the loop run (ms). */
const SLICE_MS = 2;

interface Waiting {
  done: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class FileWriter {
  private worker: Worker | undefined;
  /** The thread failed to start or died: the event loop writes from now on. */
  private inThread = false;
  private nextId = 0;
  private readonly waiting = new Map<number, Waiting>();

  /** `script`: the thread's module (tests give one that fails); the writer thread by default. */
  constructor(
    private readonly log: Logger,
    private readonly script: URL = new URL("./file-writer.worker.js", import.meta.url),
  ) {}

  /** Every job done when it resolves; rejects with the first failure (its errno `code` kept). */
  async write(jobs: FileJob[]): Promise<void> {
    if (jobs.length === 0) return;
    const worker = this.inThread ? undefined : this.start();
    if (!worker) return writeSliced(jobs);
    const id = this.nextId++;
    let waiter: Omit<Waiting, "done"> | undefined;
    const done = new Promise<void>((resolve, reject) => (waiter = { resolve, reject }));
    this.waiting.set(id, { done, ...waiter! });
    worker.ref();
    worker.postMessage({ id, jobs } satisfies WriteRequest);
    return done;
  }

  /**
   * Stops the thread once the writes it holds are done (their promises
   * settle first): terminating it mid-write would cut a file short under
   * its own name and leave the write's promise pending for ever, with
   * nothing holding the process alive for it.
   */
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    // A write that comes in meanwhile is waited for too.
    while (this.waiting.size > 0) await Promise.allSettled([...this.waiting.values()].map((x) => x.done));
    if (this.worker !== w) return; // it died meanwhile (lost() handled it) or another close() stopped it
    this.worker = undefined;
    await w.terminate();
  }

  private start(): Worker | undefined {
    if (this.worker) return this.worker;
    let w: Worker;
    try {
      w = new Worker(this.script);
    } catch (err) {
      this.fallBack(`cannot start the checkpoint's writer thread (${(err as Error).message})`);
      return undefined;
    }
    w.unref();
    w.on("message", (r: WriteReply) => {
      const waiter = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) w.unref();
      if (!waiter) return;
      if (r.ok) waiter.resolve();
      else waiter.reject(Object.assign(new Error(r.message), { code: r.code }));
    });
    w.on("error", (err) => this.lost(w, `the checkpoint's writer thread failed: ${err.message}`));
    w.on("exit", (code) => this.lost(w, `the checkpoint's writer thread exited (${code})`));
    this.worker = w;
    return w;
  }

  /** The thread is gone: what it was writing fails (the journals stay; the next checkpoint writes it again), and the event loop writes from now on. */
  private lost(w: Worker, why: string): void {
    if (this.worker !== w) return; // closed on purpose, or already handled
    this.worker = undefined;
    this.fallBack(why);
    for (const [id, waiter] of this.waiting) {
      this.waiting.delete(id);
      waiter.reject(new Error(why));
    }
  }

  private fallBack(why: string): void {
    if (!this.inThread) this.log.warn(`${why}; writing record files on the event loop`);
    this.inThread = true;
  }
}

/** On the event loop, a slice at a time, so requests keep moving between slices. */
async function writeSliced(jobs: readonly FileJob[]): Promise<void> {
  for (let i = 0; i < jobs.length; ) {
    const until = performance.now() + SLICE_MS;
    do runFileJob(jobs[i++]!);
    while (i < jobs.length && performance.now() < until);
    if (i < jobs.length) await new Promise((r) => setImmediate(r));
  }
}
