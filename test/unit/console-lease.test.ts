/** The console's lease parts: the renewer's card on the overview, and each stolen mark's source on the leases page. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { leasesPage, overviewPage, type Overview } from "../../adapters/web/admin/pages.js";
import { adminStringsFor } from "../../adapters/web/admin/strings.js";

const t = adminStringsFor("en");
const base: Overview = { counts: undefined, leases: undefined, backups: undefined, claims: [], bus: { kind: "memory", embedded: true, connected: true }, version: "0", uptimeSeconds: 1, renewDays: 7 };
const leases = { leases: 10, expiring: 0, stolen: 2, keyringOk: true, delegation: true, districtStolen: 1, districtSyncedAt: "2030-01-01T00:00:00.000Z" };

test("console-lease: the overview shows the renewer: what is left to renew, what it did, its last error", () => {
  const ok = overviewPage(t, { ...base, leases: { ...leases, aheadMissing: 3, renewal: { enabled: true, aheadDays: 30, renewed: 5, failed: 1 } } }, { csrf: "x" });
  assert.match(ok, /Lease renewer<\/small><b>3 to renew<\/b><small>30 days ahead; renewed 5, failed 1<\/small>/);
  assert.match(ok, /Stolen<\/small><b>2<\/b><small>1 from the district<\/small>/);
  const failing = overviewPage(t, { ...base, leases: { ...leases, aheadMissing: 3, renewal: { enabled: true, aheadDays: 30, error: "unavailable: no responders", lastPassAt: "2030-01-01T00:00:00.000Z" } } }, { csrf: "x" });
  assert.match(failing, /<b class="bad">3 to renew<\/b><small>unavailable: no responders 2030-01-01T00:00:00.000Z<\/small>/);
  assert.match(overviewPage(t, { ...base, leases: { ...leases, renewal: { enabled: false } } }, { csrf: "x" }), /Lease renewer<\/small><b>off<\/b>/);
});

test("console-lease: the stolen list shows each mark's source, and a lease looked up says the district's mark only the district clears", () => {
  const stolen = [
    { machineSn: "SHF00000001", source: "local" },
    { machineSn: "SHF00000002", source: "district", by: "school1", at: "2030-01-01T00:00:00.000Z" },
  ];
  const show = { lease: "", stolen: true, stolenSource: "district" };
  const html = leasesPage(t, { lookup: { sn: "SHF00000002", show, none: false }, stolen, uploadMb: 5 }, { csrf: "x" });
  assert.match(html, /<td><a href="\/admin\/leases\?sn=SHF00000001">SHF00000001<\/a><\/td><td>this school<\/td>/);
  assert.match(html, /<td>district \(marked by school1, 2030-01-01T00:00:00.000Z\)<\/td>/);
  assert.match(html, /On the district&#39;s stolen list \(marked by school1|On the district's stolen list \(marked by school1/);
  assert.not.match(html, /On the stolen list: port 191/, "not on this school's own list");
  assert.match(html, /Mark stolen/, "the button sets this school's own mark");
});

test.run();
