import { forEachBus } from "./buses.js";
import { keyringContract } from "./keyring.contract.js";

forEachBus(keyringContract);
