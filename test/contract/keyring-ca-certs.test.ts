import { forEachBus } from "./buses.js";
import { keyringCaCertsContract } from "./keyring-ca-certs.contract.js";

forEachBus(keyringCaCertsContract);
