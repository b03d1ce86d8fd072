#!/usr/bin/env node
// Entry point; the TypeScript sources are compiled to dist/ by `npm install` (prepare).
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
