// Generates static protobuf code from schemas/*.proto into schemas/gen/
// (not committed). One bundle, so messages shared across files are defined once.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const cliDir = dirname(require.resolve("protobufjs-cli/package.json"));
const protos = readdirSync(join(root, "schemas")).filter((f) => f.endsWith(".proto")).sort().map((f) => join(root, "schemas", f));
const out = join(root, "schemas", "gen", "messages.js");
mkdirSync(dirname(out), { recursive: true });
execFileSync(process.execPath, [join(cliDir, "bin", "pbjs"), "-t", "static-module", "-w", "esm", "--dependency", "protobufjs/minimal.js",
  "--no-beautify", "-d", "-o", out, ...protos], { stdio: "inherit" });
