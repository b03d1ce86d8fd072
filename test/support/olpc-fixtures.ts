/** The OLPC vectors of test/fixtures/olpc (an independent implementation's keys and leases), read once per test file. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { olpcVectorsDir } from "./paths.js";

const read = (name: string) => readFileSync(join(olpcVectorsDir, name), "utf8");
const key01 = (text: string) => text.trim().replace(/^key01:\s*/, "");

export const vectors = {
  masterPem: read("master.pem"),
  serverPem: read("server.pem"),
  masterKey01: key01(read("master.key01")),
  serverKey01: key01(read("server.key01")),
  leaseV1: read("lease-v1.txt"),
  leasesCjson: read("leases.cjson"),
  delegation: read("delegation.txt"),
  leaseChained: read("lease-chained.txt"),
  v1: { sn: "SHF706002A7", uuid: "8BF9AC40-26F8-4BCC-A699-BE51FD366419" },
  delegated: { sn: "SHC005007B7", uuid: "414737D8-2312-9241-9C7B-9886CB74403C" },
};
