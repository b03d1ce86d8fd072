#!/usr/bin/env node
// Entry point; the TypeScript sources are compiled to dist/ by `npm install` (prepare).
// libuv's thread pool runs every file operation, and a journal or backup fsync
// holds a thread for milliseconds: the default 4 threads make registrations
// queue behind the syncs. Read by libuv at its first use, after the imports.
process.env.UV_THREADPOOL_SIZE ??= "16";
import { main } from "../dist/src/cli/main.js";

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`sugar-server: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
