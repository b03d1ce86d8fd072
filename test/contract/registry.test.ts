import { MemoryBus } from "../../src/bus/memory.js";
import { registryContract } from "./registry.contract.js";
import { natsFactory } from "./nats-factory.js";

registryContract("memory", async () => ({ bus: async () => new MemoryBus({ timeoutMs: 3000 }), cleanup: async () => undefined }));
registryContract("nats", natsFactory);
