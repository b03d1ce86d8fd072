/**
 * A real browser for tests: Debian's Chromium, headless, driven by
 * puppeteer-core (which downloads no browser of its own). Each launch has a
 * user-data directory (a profile): cookies persist across the pages of one
 * launch, and a second launch given the same `profileDir` still has the
 * persistent ones. The window is an XO's screen, 1200x900, unless told.
 * `close()` ends Chromium and every process it started.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { livingInGroup } from "./procs.js";
import { toolBin, TOOLS } from "./requires.js";
import { tempDir } from "./tmp.js";
import { waitFor } from "./wait.js";

export interface BrowserOptions {
  /**
   * The profile to use, owned by the caller (kept after close, so a second
   * launch can reuse it). Without it the launch makes a temporary one and
   * removes it on close.
   */
  profileDir?: string;
  viewport?: { width: number; height: number };
  /** More Chromium flags. */
  args?: string[];
}

export interface LaunchedBrowser {
  readonly browser: Browser;
  readonly profileDir: string;
  /** Chromium's pid, also its process group (renderers, zygotes, GPU/network services). */
  readonly pid: number;
  /** A new tab. */
  newPage(): Promise<Page>;
  /**
   * Closes Chromium the polite way (so the profile's cookie store is
   * written), then kills whatever of its process group is left, and waits
   * until none runs and Chromium itself is reaped. Idempotent.
   */
  close(): Promise<void>;
}

export async function launchBrowser(opts: BrowserOptions = {}): Promise<LaunchedBrowser> {
  const executablePath = toolBin(TOOLS.chromium);
  const own = opts.profileDir === undefined ? tempDir("sugar-chromium-") : undefined;
  const profileDir = opts.profileDir ?? own!.path;
  const args = [
    // Root cannot use Chromium's sandbox (and CI runs as root).
    ...(process.getuid?.() === 0 ? ["--no-sandbox"] : []),
    "--disable-gpu",
    // Shared memory in /tmp: containers often have a tiny /dev/shm.
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    ...(opts.args ?? []),
  ];
  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      executablePath,
      headless: true,
      userDataDir: profileDir,
      defaultViewport: opts.viewport ?? { width: 1200, height: 900 },
      args,
      // DevTools over a pipe, not a TCP port.
      pipe: true,
      // The test process decides when the browser goes (close(), or puppeteer's own exit hook).
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      timeout: 30000,
    });
  } catch (err) {
    own?.remove();
    throw err;
  }
  const child = browser.process();
  if (!child?.pid) {
    await browser.close();
    own?.remove();
    throw new Error("puppeteer launched Chromium but gives no process");
  }
  const pid = child.pid;
  let closed: Promise<void> | undefined;
  return {
    browser,
    profileDir,
    pid,
    newPage: () => browser.newPage(),
    close: () =>
      (closed ??= (async () => {
        try {
          await browser.close();
        } finally {
          // Whatever survived the polite close (it should be nothing) goes now.
          if (livingInGroup(pid).length > 0) {
            try {
              process.kill(-pid, "SIGKILL");
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err; // ESRCH: gone in between
            }
          }
          // Chromium itself is our child (puppeteer waits for it). Helpers that end after it are
          // orphans: zombies until init reaps them, which may be later or (a bare container
          // init) never, so only the living count.
          await waitFor(
            `Chromium's processes (group ${pid}) to end`,
            () => livingInGroup(pid).length === 0 && (child.exitCode !== null || child.signalCode !== null),
            10000,
          );
          own?.remove();
        }
      })()),
  };
}

/** Saves a PNG of the page as DIR/NAME.png (DIR made if needed) and returns its path. */
export async function screenshot(page: Page, dir: string, name: string): Promise<string> {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`screenshot name ${JSON.stringify(name)}: letters, digits, '.', '-' and '_' only`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path: path as `${string}.png`, type: "png", fullPage: true });
  return path;
}
