/**
 * Review of issue 15 (the district): what two district actors do when one of
 * them missed the other's events, on a MemoryBus where one actor's event
 * subscriptions can be made to lose messages (its link to the hub down).
 */
import { join } from "node:path";
import { test } from "uvu";
import { startDistrict } from "../../actors/district/index.js";
import { sugar } from "../../schemas/gen/messages.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { subjects } from "../../src/bus/subjects.js";
import type { Bus } from "../../src/bus/types.js";
import { configWith } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { readFileSync, existsSync } from "node:fs";
import { tempDir } from "../support/tmp.js";
import { waitFor } from "../support/wait.js";

import pb = sugar.district;

/** A view of `bus` whose subscriptions drop what arrives while `lossy.dropping` is set. */
function lossyBus(bus: Bus): { bus: Bus; dropping: boolean } {
  const state = { dropping: false, bus: bus };
  state.bus = new Proxy(bus, {
    get(target, prop) {
      if (prop === "subscribe") {
        return (subject: string, handler: (d: Uint8Array, s: string) => unknown, opts?: unknown) =>
          (target.subscribe as (s: string, h: (d: Uint8Array, s: string) => unknown, o?: unknown) => unknown)(subject, (d, s) => (state.dropping ? undefined : handler(d, s)), opts);
      }
      const v = (target as unknown as Record<string | symbol, unknown>)[prop];
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return state;
}

const stolenOnDisk = (root: string): string[] => {
  const f = join(root, "district", "stolen");
  return existsSync(f) ? (JSON.parse(readFileSync(f, "utf8")) as { marks: Array<{ machineSn: string; stolen: boolean }> }).marks.filter((m) => m.stolen).map((m) => m.machineSn) : [];
};

test("district-review: a district actor that missed a peer's mark (its link was down) learns it within district-sync-seconds", async () => {
  const dir = tempDir();
  const bus = new MemoryBus({ timeoutMs: 3000 });
  const lossy = lossyBus(bus);
  const config = (name: string) => configWith({ root: join(dir.path, name), "district-sync-seconds": 1 });
  const d1 = await startDistrict({ bus, config: config("a"), log: silentLogger });
  const d2 = await startDistrict({ bus: lossy.bus, config: config("b"), log: silentLogger });
  try {
    lossy.dropping = true;
    // A mark as a third district actor (or d1 serving a school) publishes it: d1 follows it, d2 misses it.
    bus.publish(subjects.districtEvent("stolen"), pb.Mark.encode({ machineSn: "SHF00000001", stolen: true, at: new Date().toISOString(), by: "school1" }).finish());
    await waitFor("d1 holds the mark", () => stolenOnDisk(join(dir.path, "a")).includes("SHF00000001"));
    lossy.dropping = false;
    await waitFor("d2 holds the mark too", () => stolenOnDisk(join(dir.path, "b")).includes("SHF00000001"), 8000);
  } finally {
    await d2.stop();
    await d1.stop();
    await bus.close();
    dir.remove();
  }
});

test.run();
