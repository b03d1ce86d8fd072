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
  const show = { lease: "", stolen: true, stolenSource: "district", districtMark: stolen[1] };
  const html = leasesPage(t, { lookup: { sn: "SHF00000002", show, none: false }, stolen: { entries: stolen, serials: 2, total: 2, after: "", next: "" }, uploadMb: 5 }, { csrf: "x" });
  assert.match(html, /<td><a href="\/admin\/leases\?sn=SHF00000001">SHF00000001<\/a><\/td><td>this school<\/td>/);
  assert.match(html, /<td>district \(marked by school1, 2030-01-01T00:00:00.000Z\)<\/td>/);
  assert.match(html, /On the district&#39;s stolen list \(marked by school1|On the district's stolen list \(marked by school1/);
  assert.not.match(html, /On the stolen list: port 191/, "not on this school's own list");
  assert.match(html, /Mark stolen/, "the button sets this school's own mark");
  assert.match(html, /2 of 2 stolen serial numbers;/);
  assert.not.match(html, /Next page|First page/, "one page: nothing to page through");
});

test("console-lease: a page of a long stolen list says how much of it is shown and links the next page and the first, keeping the serial number looked up", () => {
  const entries = [{ machineSn: "SHF00000003", source: "local" }, { machineSn: "SHF00000004", source: "local" }];
  const middle = leasesPage(t, { lookup: { sn: "SHF00000009", show: undefined, none: true }, stolen: { entries, serials: 2, total: 50_000, after: "SHF00000002", next: "SHF00000004" }, uploadMb: 5 }, { csrf: "x" });
  assert.match(middle, /2 of 50,000 stolen serial numbers, after SHF00000002;/);
  assert.match(middle, /<a rel="next" href="\/admin\/leases\?sn=SHF00000009&amp;after=SHF00000004#stolen">Next page<\/a>/);
  assert.match(middle, /<a href="\/admin\/leases\?sn=SHF00000009#stolen">First page<\/a>/);
  assert.is(middle.match(/<tr>/g)?.length, 1 + entries.length, "the table head and the page's rows, no more");
  const last = leasesPage(t, { stolen: { entries: [], serials: 0, total: 3, after: "SHF0000FFFF", next: "" }, uploadMb: 5 }, { csrf: "x" });
  assert.match(last, /0 of 3 stolen serial numbers, after SHF0000FFFF;/, "past the end: an empty last page, with the way back");
  assert.match(last, /First page/);
  assert.not.match(last, /Next page/);
  const es = leasesPage(adminStringsFor("es"), { stolen: { entries, serials: 2, total: 50_000, after: "", next: "SHF00000004" }, uploadMb: 5 }, { csrf: "x" });
  assert.match(es, /2 de 50,000 números de serie robados; buscá uno arriba\./);
  assert.match(es, /Página siguiente/);
});

test.run();
