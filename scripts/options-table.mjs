// Prints the README's options table from the one option table in src/config.ts
// (run after `npm run build`). test/unit/readme.test.ts checks the README holds
// exactly this, so the README cannot drift from the code.
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { OPTIONS, defaultEnv } = await import(join(root, "dist", "src", "config.js"));

export function optionsTable() {
  const env = { ...defaultEnv(), home: "~", user: "<your user>", hostname: "<host name>" };
  const rows = ["| option | default | meaning |", "| --- | --- | --- |"];
  for (const o of OPTIONS) {
    let d = o.derive ? "<root>/keyring" : String(o.default(env));
    if (o.name === "root") d = "~/.local/share/sugar-server";
    rows.push(`| \`${o.name}\` | ${d === "" ? "(empty)" : `\`${d}\``} | ${o.help.replace(/\|/g, "\\|")} |`);
  }
  return rows.join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(optionsTable());
