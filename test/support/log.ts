/** A logger for tests that keeps every line (debug and up) for assertions; TEST_VERBOSE=1 also prints them. */
import { createLogger, type Logger } from "../../src/log.js";

export function captureLogger(): { log: Logger; text: () => string } {
  let text = "";
  const stream = { write: (chunk: string) => ((text += chunk), process.env.TEST_VERBOSE ? process.stderr.write(chunk) : true) } as unknown as NodeJS.WritableStream;
  return { log: createLogger({ level: "debug", stream, prefix: "sugar-server" }), text: () => text };
}
