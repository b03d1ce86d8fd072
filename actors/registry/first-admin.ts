/**
 * Option `first-admin = first-registrant`, the OLPC seed's rule: the first
 * user ever registered (the registry holds no user, so no admin) becomes this
 * server's admin. Atomically: while the registry is empty every registration
 * also takes one shared lock, and the one that finds the registry still empty
 * under it is the admin; the others wait their turn and find a user there.
 * Once a user exists registrations skip the lock, so they run in parallel as
 * before (none of them can be the first any more).
 *
 * Under `first-admin = claim` (the default) nobody becomes admin by
 * registering: the auth actor's one-time claim URL makes the first admin.
 */
import type { Config } from "../../src/config.js";
import type { RegistryStore } from "./store.js";

const LOCK = "first-admin";

export interface FirstAdmin {
  /** The lock keys a registration adds to its own, taken with them. */
  lockKeys(): string[];
  /** Under those locks, just before the new user is written: is it the first user, to be made admin? */
  isFirst(keys: readonly string[]): boolean;
}

export function firstAdmin(store: RegistryStore, config: Config): FirstAdmin {
  const on = config["first-admin"] === "first-registrant";
  return {
    lockKeys: () => (on && store.userCount === 0 ? [LOCK] : []),
    isFirst: (keys) => on && keys.includes(LOCK) && store.userCount === 0,
  };
}
