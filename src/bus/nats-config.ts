/** Builds a NatsBus from the configuration's nats-* options. */
import { SugarError } from "../errors.js";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { NatsBus } from "./nats.js";

/**
 * `nats://user:password@host:port` is what admins write; nats.js wants the
 * credentials as options, so they are taken out of the URLs here.
 */
function splitNatsUrls(urls: string): { servers: string[]; user?: string; password?: string } {
  let user: string | undefined;
  let password: string | undefined;
  const servers = urls
    .split(",")
    .map((u) => u.trim())
    .filter(Boolean)
    .map((u) => {
      const withScheme = /^[a-z]+:\/\//i.test(u) ? u : `nats://${u}`;
      let parsed: URL;
      try {
        parsed = new URL(withScheme);
      } catch {
        throw new SugarError("invalid_input", `nats: ${JSON.stringify(u)} is not a URL`);
      }
      if (parsed.username) {
        user = decodeURIComponent(parsed.username);
        password = decodeURIComponent(parsed.password);
      }
      return `${parsed.protocol}//${parsed.host}`;
    });
  return { servers, user, password };
}

export function connectNatsFromConfig(config: Config, log: Logger): Promise<NatsBus> {
  const orUndefined = (v: string) => (v === "" ? undefined : v);
  const fromUrl = splitNatsUrls(config.nats);
  return NatsBus.connect({
    servers: fromUrl.servers,
    user: orUndefined(config["nats-user"]) ?? fromUrl.user,
    password: orUndefined(config["nats-password"]) ?? fromUrl.password,
    credsFile: orUndefined(config["nats-creds"]),
    tlsCaFile: orUndefined(config["nats-tls-ca"]),
    tlsCertFile: orUndefined(config["nats-tls-cert"]),
    tlsKeyFile: orUndefined(config["nats-tls-key"]),
    inboxPrefix: orUndefined(config["nats-inbox-prefix"]),
    name: `sugar-server/${config.site}`,
    timeoutMs: config["bus-timeout"],
    waitOnFirstConnect: config["nats-wait"],
    log: log.child("nats"),
  });
}
