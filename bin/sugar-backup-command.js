#!/usr/bin/env node
// The forced command of every client key in the backup user's authorized_keys
// (see actors/backup/command.ts). sshd runs it as
//   <node> <this file> --root ROOT --rrsync RRSYNC UID
// Never write to stdout here: it carries the rsync protocol.
import { main } from "../dist/actors/backup/command.js";

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`sugar-backup-command: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
