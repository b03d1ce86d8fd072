/**
 * The checkpoint's writer thread (file-writer.ts starts it): writes the
 * files of one checkpoint at a time, synchronously, on a core the event loop
 * does not need, and answers with the first error's message and errno code.
 */
import { parentPort } from "node:worker_threads";
import { runFileJob, type FileJob } from "./record-file.js";

export interface WriteRequest {
  id: number;
  jobs: FileJob[];
}
export type WriteReply = { id: number; ok: true } | { id: number; ok: false; message: string; code: string | undefined };

const port = parentPort;
if (!port) throw new Error("file-writer.worker: not started as a worker thread");
port.on("message", ({ id, jobs }: WriteRequest) => {
  let reply: WriteReply = { id, ok: true };
  try {
    for (const job of jobs) runFileJob(job);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    reply = { id, ok: false, message: e.message, code: e.code };
  }
  port.postMessage(reply);
});
