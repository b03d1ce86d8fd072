/**
 * The console's page shell: a navigation bar, one column that reads on an
 * XO's 1200×900 screen and on a phone (cards wrap, tables scroll sideways),
 * server-rendered, usable without JavaScript. Every value from outside goes
 * through esc(); every form carries the CSRF token.
 */
import { esc } from "../pages.js";
import type { AdminStrings } from "./strings.js";

export { esc };

export type Section = "overview" | "users" | "leases" | "backups";

const STYLE = `*{box-sizing:border-box}body{font-family:sans-serif;font-size:1.05rem;margin:0;background:#f2f2f2;color:#222}
header{background:#1a6;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}
header strong{font-size:1.2rem;margin-right:1rem}header a{color:#fff;text-decoration:none;padding:.3rem .5rem;border-radius:.3rem}
header a.here{background:#fff3}main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0 1rem}h2{font-size:1.2rem;margin:1.5rem 0 .6rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(13rem,1fr));gap:.8rem}
.card{background:#fff;border-radius:.5rem;padding:.8rem 1rem;box-shadow:0 1px 3px #0002}
.card b{display:block;font-size:1.6rem}.card small{color:#555}.bad{color:#a11}.good{color:#171}
section{background:#fff;border-radius:.5rem;padding:.8rem 1rem;box-shadow:0 1px 3px #0002;margin:1rem 0}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd;white-space:nowrap}
form.inline{display:inline}input[type=text],input[type=search],input[type=file]{font-size:1rem;padding:.45rem;border:2px solid #888;border-radius:.35rem;max-width:100%}
button{font-size:1rem;padding:.45rem 1rem;border:0;border-radius:.35rem;background:#1a6;color:#fff;cursor:pointer}
button.danger{background:#b33}button.quiet{background:#666}
#live{list-style:none;padding:0;margin:0;max-height:22rem;overflow-y:auto;font-family:monospace;font-size:.95rem}
#live li{padding:.25rem 0;border-bottom:1px solid #eee}#live time{color:#666;margin-right:.6rem}
.kind{display:inline-block;min-width:8rem;font-weight:bold}.msg{padding:.6rem 1rem;border-radius:.4rem;background:#dfd}.msg.error{background:#fdd}
progress{width:100%;height:1.2rem}code{word-break:break-all}`;

export function shell(t: AdminStrings, here: Section, title: string, body: string, opts: { script?: string; notice?: string; error?: boolean } = {}): string {
  const nav = (["overview", "users", "leases", "backups"] as const)
    .map((s) => `<a href="${s === "overview" ? "/admin" : `/admin/${s}`}"${s === here ? ' class="here" aria-current="page"' : ""}>${esc(t.nav[s])}</a>`)
    .join("");
  return `<!DOCTYPE html>
<html lang="${esc(t.lang)}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · ${esc(t.console)}</title><style>${STYLE}</style></head>
<body><header><strong>${esc(t.console)}</strong>${nav}<a href="/metrics">${esc(t.nav.metrics)}</a></header>
<main><h1>${esc(title)}</h1>
${opts.notice ? `<p class="msg${opts.error ? " error" : ""}" role="status">${esc(opts.notice)}</p>` : ""}
${body}
</main>${opts.script ? `<script>${opts.script}</script>` : ""}</body></html>
`;
}

/** A POST form to an admin action: the CSRF token, hidden fields, one button. */
export function actionForm(action: string, csrf: string, fields: Record<string, string>, button: string, cls = ""): string {
  const hidden = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join("");
  return `<form class="inline" method="post" action="${esc(action)}"><input type="hidden" name="csrf" value="${esc(csrf)}">${hidden}<button type="submit"${cls ? ` class="${cls}"` : ""}>${esc(button)}</button></form>`;
}

export function card(label: string, value: string, note = "", cls = ""): string {
  return `<div class="card"><small>${esc(label)}</small><b${cls ? ` class="${cls}"` : ""}>${esc(value)}</b>${note ? `<small>${esc(note)}</small>` : ""}</div>`;
}

export function table(head: string[], rows: string[][]): string {
  return `<div class="scroll"><table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`;
}

export function bytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${Math.floor(seconds % 60)}s`;
}
