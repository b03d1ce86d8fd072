/** A small leveled logger: one line per event, to a stream the caller chooses. */
export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  /** A logger whose lines are prefixed with `name: `. */
  child(name: string): Logger;
}

export function createLogger(opts: { level?: LogLevel; stream?: NodeJS.WritableStream; prefix?: string } = {}): Logger {
  const min = ORDER[opts.level ?? "info"];
  const stream = opts.stream ?? process.stderr;
  const prefix = opts.prefix ? `${opts.prefix}: ` : "";
  const line = (level: LogLevel, msg: string) => {
    if (ORDER[level] < min) return;
    stream.write(`${new Date().toISOString()} ${level.toUpperCase()} ${prefix}${msg}\n`);
  };
  return {
    debug: (m) => line("debug", m),
    info: (m) => line("info", m),
    warn: (m) => line("warn", m),
    error: (m) => line("error", m),
    child: (name) => createLogger({ ...opts, prefix: opts.prefix ? `${opts.prefix}/${name}` : name }),
  };
}

/** For tests and CLI commands that must stay quiet. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
