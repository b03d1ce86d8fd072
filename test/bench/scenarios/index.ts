/** Every scenario, in the order the bench runs them. */
import type { Scenario } from "../context.js";
import { activationStorm } from "./activation.js";
import { backup } from "./backup.js";
import { busRoundtrip } from "./bus.js";
import { district } from "./district.js";
import { keyring } from "./keyring.js";
import { registryScale } from "./registry-scale.js";
import { authVerify, login, register, registerNats, registerXmlrpc, status } from "./rest.js";
import { tls } from "./tls.js";

export const SCENARIOS: readonly Scenario[] = [status, register, registerXmlrpc, registerNats, login, authVerify, tls, busRoundtrip, activationStorm, keyring, district, registryScale, backup];

/** Row names of a scenario: its id, or `id/part`. */
export const rowBelongsTo = (row: string, id: string): boolean => row === id || row.startsWith(`${id}/`);
