import { forEachBus } from "./buses.js";
import { keyringCaContract } from "./keyring-ca.contract.js";

forEachBus(keyringCaContract);
