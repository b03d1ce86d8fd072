/**
 * The pages: plain server-rendered HTML that works without JavaScript (old
 * Browse), one column that reads on a 1200×900 XO screen and on a phone.
 * Every value from outside goes through esc().
 */
import type { Strings } from "./strings.js";

export const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const STYLE = `body{font-family:sans-serif;font-size:1.25rem;margin:0;padding:1.5rem;background:#f4f4f4;color:#222}
main{max-width:36rem;margin:2rem auto;background:#fff;padding:2rem;border-radius:.75rem;box-shadow:0 1px 4px #0002}
h1{font-size:1.6rem;margin-top:0}label{display:block;margin:1rem 0 .4rem}
input[type=text]{width:100%;box-sizing:border-box;font-size:1.25rem;padding:.6rem;border:2px solid #888;border-radius:.4rem}
button,.button{display:inline-block;margin-top:1.2rem;font-size:1.25rem;padding:.7rem 1.6rem;border:0;border-radius:.4rem;background:#1a6;color:#fff;text-decoration:none}
.error{color:#a11}`;

function page(t: Strings, heading: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="${esc(t.lang)}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(heading)} · ${esc(t.title)}</title><style>${STYLE}</style></head>
<body><main><h1>${esc(heading)}</h1>
${body}
</main></body></html>
`;
}

export function registerPage(t: Strings, o: { csrf: string; rd: string; error?: string; nickname?: string }): string {
  return page(
    t,
    t.registerHeading,
    `${o.error ? `<p class="error">${esc(o.error)}</p>` : ""}<p>${esc(t.registerIntro)}</p>
<form method="post" action="/register">
<label for="nickname">${esc(t.nickname)}</label>
<input type="text" id="nickname" name="nickname" maxlength="200" required autofocus value="${esc(o.nickname ?? "")}">
<input type="hidden" name="csrf" value="${esc(o.csrf)}">
<input type="hidden" name="rd" value="${esc(o.rd)}">
<button type="submit">${esc(t.registerButton)}</button>
</form>`,
  );
}

export function registeredPage(t: Strings, o: { nickname: string; rd: string; csrf: string }): string {
  return page(
    t,
    t.registeredHeading,
    `<p>${esc(t.registeredText)} <strong>${esc(o.nickname)}</strong>.</p>
${o.rd ? `<p><a class="button" href="${esc(o.rd)}">${esc(t.continueLink)}</a></p>` : ""}
<form method="post" action="/auth/logout"><input type="hidden" name="csrf" value="${esc(o.csrf)}"><button type="submit">${esc(t.logoutButton)}</button></form>`,
  );
}

export const messagePage = (t: Strings, heading: string, text: string) => page(t, heading, `<p>${esc(text)}</p>`);
