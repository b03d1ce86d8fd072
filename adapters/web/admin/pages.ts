/**
 * The console's pages, pure functions from what the actors answered to
 * HTML: overview (with the live feed), users and a user, leases and the
 * stolen list, backups. A part whose actor did not answer says so instead of
 * failing the page.
 */
import type { sugar } from "../../../schemas/gen/messages.js";
import { actionForm, bytes, card, duration, esc, shell, table } from "./layout.js";
import type { AdminStrings } from "./strings.js";

type User = sugar.registry.User.$Properties;
type Claim = sugar.registry.Claim.$Properties;
type BackupInfo = sugar.backup.BackupInfo.$Properties;
type StolenEntry = sugar.lease.StolenEntry.$Properties;

/** An actor's answer, or undefined when it did not answer (not running here, busy, down). */
export type Maybe<T> = T | undefined;

export interface Overview {
  counts: Maybe<sugar.registry.AdminsReply.$Properties>;
  leases: Maybe<sugar.lease.StatusReply.$Properties>;
  backups: Maybe<sugar.backup.SummaryReply.$Properties>;
  claims: Maybe<Claim[]>;
  bus: { kind: string; embedded: boolean; connected: boolean };
  version: string;
  uptimeSeconds: number;
  renewDays: number;
}

export interface PageOptions {
  csrf: string;
  notice?: string;
  error?: boolean;
}

const num = (n: number | null | undefined) => (n ?? 0).toLocaleString("en-US");

/** The live feed's client: a WebSocket on /admin/live; every line is text (textContent), never HTML. */
const LIVE_SCRIPT = `(function(){var ul=document.getElementById("live"),st=document.getElementById("live-state");if(!window.WebSocket||!ul)return;
var n=0;function connect(){var ws=new WebSocket((location.protocol==="https:"?"wss://":"ws://")+location.host+"/admin/live");
ws.onopen=function(){st.textContent="\\u25cf";st.className="good"};
ws.onclose=function(){st.textContent="\\u25cb";st.className="bad";setTimeout(connect,3000)};
ws.onmessage=function(m){var e;try{e=JSON.parse(m.data)}catch(x){return}var li=document.createElement("li");li.className="ev-"+e.kind;
var t=document.createElement("time");t.textContent=(e.time||"").slice(11,19);var k=document.createElement("span");k.className="kind";k.textContent=e.kind;
li.appendChild(t);li.appendChild(k);li.appendChild(document.createTextNode(e.text||""));ul.insertBefore(li,ul.firstChild);
if(++n>200)ul.removeChild(ul.lastChild)}}connect()})();`;

export function overviewPage(t: AdminStrings, o: Overview, p: PageOptions): string {
  const na = t.unavailable;
  const c = o.counts;
  const l = o.leases;
  const b = o.backups;
  const keyring = !l
    ? card(t.keyring, na, "", "bad")
    : !l.lastSignAt && !l.keyringError
      ? card(t.keyring, t.keyringNone, l.delegation ? "" : "delegation off")
      : card(t.keyring, l.keyringOk ? t.keyringOk : t.keyringFailed, l.keyringOk ? `${t.lastSign}: ${Math.round(l.lastSignMs ?? 0)} ms` : `${l.keyringError} ${l.keyringErrorAt ?? ""}`, l.keyringOk ? "good" : "bad");
  const r = l?.renewal;
  const renewer = !l
    ? card(t.renewer, na, "", "bad")
    : !r?.enabled
      ? card(t.renewer, t.renewerOff)
      : card(t.renewer, t.renewerLeft(num(l.aheadMissing)), r.error ? `${r.error} ${r.lastPassAt ?? ""}` : t.renewerNote(r.aheadDays ?? 0, num(r.renewed), num(r.failed)), r.error ? "bad" : "");
  const districtNote = l?.districtSyncedAt ? t.fromDistrict(num(l.districtStolen)) : l?.districtStolen ? `${t.fromDistrict(num(l.districtStolen))}; ${t.districtNotSynced}` : "";
  const cards = [
    card(t.users, c ? num(c.users) : na, c ? `${num(c.admins)} ${t.admins.toLowerCase()}` : "", c ? "" : "bad"),
    card(t.machines, c ? num(c.machines) : na, "", c ? "" : "bad"),
    card(t.leases, l ? num(l.leases) : na, l ? `${num(l.expiring)} ${t.expiring(o.renewDays)}` : "", l ? "" : "bad"),
    card(t.stolen, l ? num(l.stolen) : na, districtNote, l ? "" : "bad"),
    card(t.backupsToday, b ? num(b.today) : na, "", b ? "" : "bad"),
    card(t.backupsRunning, b ? `${num(b.running)} / ${num(b.slots)}` : na, t.slots, b ? "" : "bad"),
    card(t.disk, b ? `${(b.diskFree ?? 0).toFixed(1)}% ${t.free}` : na, "", !b || (b.diskFree ?? 0) < 15 ? "bad" : ""),
    card(t.inodes, b ? ((b.inodesFree ?? -1) < 0 ? "-" : `${(b.inodesFree ?? 0).toFixed(1)}% ${t.free}`) : na, "", !b || ((b.inodesFree ?? 100) >= 0 && (b.inodesFree ?? 100) < 15) ? "bad" : ""),
    keyring,
    renewer,
    card(t.bus, o.bus.embedded ? t.busEmbedded : "NATS", o.bus.embedded ? "" : `${o.bus.connected ? t.connected : t.disconnected}`, o.bus.connected ? "" : "bad"),
    card(t.version, o.version, `${t.uptime} ${duration(o.uptimeSeconds)}`),
  ].join("\n");
  const body = `<div class="cards">${cards}</div>
${claimsSection(t, o.claims, p.csrf)}
<section><h2>${esc(t.live)} <span id="live-state" aria-hidden="true"></span></h2><p><small>${esc(t.liveIntro)}</small></p>
<noscript><p>${esc(t.liveOff)}</p></noscript><ul id="live" aria-live="polite"></ul></section>`;
  return shell(t, "overview", t.overview, body, { script: LIVE_SCRIPT, notice: p.notice, error: p.error });
}

function claimsSection(t: AdminStrings, claims: Maybe<Claim[]>, csrf: string): string {
  if (claims === undefined) return `<section><h2>${esc(t.pendingClaims)}</h2><p class="bad">${esc(t.unavailable)}</p></section>`;
  if (claims.length === 0) return `<section><h2>${esc(t.pendingClaims)}</h2><p>${esc(t.noClaims)}</p></section>`;
  const rows = claims.map((c) => [
    esc(t.claimText(c.newNickname ?? "", c.oldNickname ?? "", c.machineSn ?? "")),
    esc(c.created ?? ""),
    actionForm("/admin/claims/approve", csrf, { uid: c.newUid ?? "", back: "/admin/users" }, t.approve) + " " + actionForm("/admin/claims/reject", csrf, { uid: c.newUid ?? "", back: "/admin/users" }, t.reject, "danger"),
  ]);
  return `<section id="claims"><h2>${esc(t.pendingClaims)}</h2>${table(["", t.registered, ""], rows)}</section>`;
}

const userLink = (u: User) => `<a href="/admin/user?uid=${esc(encodeURIComponent(u.uid ?? ""))}">${esc(u.nickname || "-")}</a>`;

export function usersPage(t: AdminStrings, o: { query: string; users: Maybe<User[]>; total: number; claims: Maybe<Claim[]> }, p: PageOptions): string {
  const form = `<form method="get" action="/admin/users"><input type="search" name="q" value="${esc(o.query)}" placeholder="${esc(t.searchHint)}" aria-label="${esc(t.searchHint)}"> <button type="submit">${esc(t.search)}</button></form>`;
  let list: string;
  if (o.users === undefined) list = `<p class="bad">${esc(t.unavailable)}</p>`;
  else if (o.users.length === 0) list = `<p>${esc(t.noMatch)}</p>`;
  else {
    const rows = o.users.map((u) => [userLink(u), `<code>${esc(u.uid ?? "")}</code>`, esc(u.machineSn || "-"), u.admin ? esc(t.yes) : "", esc((u.created ?? "").slice(0, 10))]);
    list = table([t.nickname, t.uid, t.sn, t.admin, t.registered], rows) + (o.total > o.users.length ? `<p><small>${esc(t.more(o.users.length, o.total))}</small></p>` : "");
  }
  return shell(t, "users", t.users, `<section>${form}${list}</section>${claimsSection(t, o.claims, p.csrf)}`, { notice: p.notice, error: p.error });
}

export function userPage(t: AdminStrings, o: { user: User; backup: Maybe<BackupInfo> }, p: PageOptions): string {
  const u = o.user;
  const uid = u.uid ?? "";
  const b = o.backup;
  const facts = table(
    ["", ""],
    [
      [esc(t.uid), `<code>${esc(uid)}</code>`],
      [esc(t.nickname), esc(u.nickname ?? "")],
      [esc(t.kind), esc(u.kind || "sugar")],
      [esc(t.sn), u.machineSn ? `<a href="/admin/leases?sn=${esc(encodeURIComponent(u.machineSn))}">${esc(u.machineSn)}</a>` : "-"],
      [esc(t.registered), esc(u.created ?? "")],
      [esc(t.admin), esc(u.admin ? t.yes : t.no)],
      [esc(t.lastBackup), esc(b ? b.lastBackup || t.never : t.unavailable)],
      [esc(t.size), b ? `${esc(bytes(b.sizeBytes ?? 0))}, ${num(b.files)} ${esc(t.files)}` : "-"],
    ],
  );
  const snaps = b?.snapshots?.length ? table([t.snapshots, ""], b.snapshots.map((s) => [esc(s.name ?? ""), esc(s.created ?? "")])) : "";
  const back = `/admin/user?uid=${encodeURIComponent(uid)}`;
  const actions = [
    actionForm("/admin/user/admin", p.csrf, { uid, admin: u.admin ? "off" : "on", back }, u.admin ? t.dropAdmin : t.makeAdmin, u.admin ? "quiet" : ""),
    actionForm("/admin/user/remove", p.csrf, { uid, back: "/admin/users" }, t.remove, "danger"),
  ].join(" ");
  return shell(t, "users", `${t.user}: ${u.nickname ?? uid}`, `<section>${facts}${snaps}<p>${actions}</p><p><small>${esc(t.removeConfirm)}</small></p></section>`, { notice: p.notice, error: p.error });
}

export interface LeaseLookup {
  sn: string;
  show: Maybe<sugar.lease.ShowReply.$Properties>;
  /** The lease actor answered not_found: nothing about this serial number. */
  none: boolean;
}

export interface ImportSummary {
  imported: number;
  replaced: number;
  refused: Array<{ where: string; reason: string }>;
}

export const UPLOAD_SCRIPT = `(function(){var f=document.getElementById("upload");if(!f||!window.FormData||!window.XMLHttpRequest)return;
f.addEventListener("submit",function(ev){ev.preventDefault();var bar=document.getElementById("upload-progress");bar.hidden=false;bar.value=0;
var x=new XMLHttpRequest();x.open("POST",f.action);x.upload.onprogress=function(e){if(e.lengthComputable)bar.value=e.loaded/e.total};
x.onload=function(){document.open();document.write(x.responseText);document.close()};x.send(new FormData(f))})})();`;

/** A mark's source, for a person. */
const sourceText = (t: AdminStrings, e: StolenEntry) => (e.source === "district" ? t.sourceDistrict(e.by ?? "", e.at ?? "") : t.sourceLocal);

/** One page of the stolen list, as the lease actor answered it. */
export interface StolenPage {
  /** The page's marks, by serial number (a serial number marked here and by the district has two). */
  entries: StolenEntry[];
  /** Serial numbers on this page. */
  serials: number;
  /** Serial numbers on the whole list. */
  total: number;
  /** The serial number this page starts after; "" = the first page. */
  after: string;
  /** The next page starts after this one; "" = this is the last page. */
  next: string;
}

/** A link to another page of the stolen list, keeping the serial number looked up. */
const stolenPageHref = (sn: string | undefined, after: string) => `/admin/leases?${new URLSearchParams({ ...(sn ? { sn } : {}), ...(after ? { after } : {}) }).toString()}#stolen`;

export function leasesPage(t: AdminStrings, o: { lookup?: LeaseLookup; stolen: Maybe<StolenPage>; result?: ImportSummary; uploadMb: number }, p: PageOptions): string {
  const form = `<form method="get" action="/admin/leases"><input type="search" name="sn" value="${esc(o.lookup?.sn ?? "")}" placeholder="SHF00000000" aria-label="${esc(t.sn)}"> <button type="submit">${esc(t.lookUp)}</button></form>`;
  let found = "";
  const l = o.lookup;
  if (l) {
    const s = l.show;
    // This school's mark is the one the button sets; a district mark only the district clears.
    const sources = (s?.stolenSource ?? "").split(",");
    const stolen = s?.stolenSource ? sources.includes("local") : !!s?.stolen;
    const districtMark = sources.includes("district") ? (s?.districtMark ?? {}) : undefined;
    const last = s?.lastActivation;
    const rows: string[][] = [];
    if (s?.lease) rows.push([esc(t.expiry), esc(s.expiry ?? ""), esc(s.kind ?? "")]);
    if (last) rows.push([esc(t.lastActivation), esc(last.time ?? ""), `${esc(t.answer)}: <b class="answer">${esc(last.answer ?? "")}</b> (${Math.round(last.latencyMs ?? 0)} ms)`]);
    found = `<h2>${esc(t.leaseFor(l.sn))}</h2>${s === undefined && !l.none ? `<p class="bad">${esc(t.unavailable)}</p>` : ""}${!s?.lease ? `<p>${esc(t.noLease)}</p>` : ""}${rows.length ? table(["", "", ""], rows) : ""}
${stolen ? `<p class="bad"><b>${esc(t.onStolenList)}</b></p>` : ""}${districtMark ? `<p class="bad"><b>${esc(t.onDistrictList(districtMark.by ?? "?", districtMark.at ?? "?"))}</b></p>` : ""}<p>${actionForm("/admin/stolen", p.csrf, { sn: l.sn, stolen: stolen ? "0" : "1", back: `/admin/leases?sn=${encodeURIComponent(l.sn)}` }, stolen ? t.markNotStolen : t.markStolen, stolen ? "quiet" : "danger")}</p>`;
  }
  const r = o.result;
  const result = r
    ? `<section id="import-result"><h2>${esc(t.importResult)}</h2><p><b class="imported">${num(r.imported)}</b> ${esc(t.imported)}, <b class="replaced">${num(r.replaced)}</b> ${esc(t.replaced)}, <b class="refused">${num(r.refused.length)}</b> ${esc(t.refused)}</p>${
        r.refused.length ? table([t.refused, ""], r.refused.slice(0, 200).map((x) => [esc(x.where), esc(x.reason)])) : ""
      }</section>`
    : "";
  const upload = `<section><h2>${esc(t.upload)}</h2><p><small>${esc(t.uploadHint(o.uploadMb))}</small></p>
<form id="upload" method="post" action="/admin/leases/import" enctype="multipart/form-data"><input type="hidden" name="csrf" value="${esc(p.csrf)}">
<input type="file" name="file" required> <button type="submit">${esc(t.uploadButton)}</button><progress id="upload-progress" max="1" value="0" hidden></progress></form></section>`;
  const sp = o.stolen;
  const pager = sp
    ? `<p><small>${esc(t.stolenShown(num(sp.serials), num(sp.total), sp.after))}</small>${sp.after ? ` <a href="${esc(stolenPageHref(o.lookup?.sn, ""))}">${esc(t.firstPage)}</a>` : ""}${sp.next ? ` <a rel="next" href="${esc(stolenPageHref(o.lookup?.sn, sp.next))}">${esc(t.nextPage)}</a>` : ""}</p>`
    : "";
  const stolen =
    sp === undefined
      ? `<p class="bad">${esc(t.unavailable)}</p>`
      : sp.entries.length
        ? table([t.sn, t.source], sp.entries.map((e) => [`<a href="/admin/leases?sn=${esc(encodeURIComponent(e.machineSn ?? ""))}">${esc(e.machineSn ?? "")}</a>`, esc(sourceText(t, e))])) + pager
        : sp.after
          ? `<p>-</p>${pager}`
          : "<p>-</p>";
  return shell(t, "leases", t.nav.leases, `${result}<section>${form}${found}</section>${upload}<section id="stolen"><h2>${esc(t.stolenList)}</h2>${stolen}</section>`, { script: UPLOAD_SCRIPT, notice: p.notice, error: p.error });
}

export function backupsPage(t: AdminStrings, o: { summary: Maybe<sugar.backup.SummaryReply.$Properties>; backups: Maybe<BackupInfo[]> }, p: PageOptions): string {
  const s = o.summary;
  const running = new Set(s?.runningUids ?? []);
  const cards = `<div class="cards">${card(t.backupsRunning, s ? `${num(s.running)} / ${num(s.slots)}` : t.unavailable, t.slots)}${card(t.backupsToday, s ? num(s.today) : t.unavailable)}${card(t.disk, s ? `${(s.diskFree ?? 0).toFixed(1)}% ${t.free}` : t.unavailable)}</div>`;
  const list =
    o.backups === undefined
      ? `<p class="bad">${esc(t.unavailable)}</p>`
      : table(
          [t.nickname, t.lastBackup, t.size, t.snapshots, ""],
          [...o.backups]
            .sort((a, b) => (b.lastBackup ?? "").localeCompare(a.lastBackup ?? ""))
            .map((b) => [
              `<a href="/admin/user?uid=${esc(encodeURIComponent(b.uid ?? ""))}">${esc(b.nickname || b.uid || "")}</a>`,
              esc(b.lastBackup || t.never),
              esc(bytes(b.sizeBytes ?? 0)),
              num(b.snapshots?.length ?? 0),
              running.has(b.uid ?? "") ? `<b>${esc(t.busy)}</b>` : "",
            ]),
        );
  return shell(t, "backups", t.backups, `${cards}<section>${list}</section>`, { notice: p.notice, error: p.error });
}

export function messagePage(t: AdminStrings, heading: string, text: string): string {
  return shell(t, "overview", heading, `<p>${esc(text)}</p><p><a href="/admin">${esc(t.nav.overview)}</a></p>`);
}
