/** The registry contract on every Bus implementation (test/contract/buses.ts). */
import { forEachBus } from "./buses.js";
import { registryContract } from "./registry.contract.js";

forEachBus((kind) => registryContract(kind));
