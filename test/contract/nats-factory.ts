/** Buses for the contract suites: each a new connection to one real nats-server the suite starts. */
import { NatsBus } from "../../src/bus/nats.js";
import { natsServerPath, SKIP_MESSAGE, startNatsServer } from "../support/nats-server.js";
import type { BusFactory } from "./registry.contract.js";

export async function natsFactory(): Promise<BusFactory | undefined> {
  if (!natsServerPath()) {
    console.log(`\n${SKIP_MESSAGE}: the NATS half of the contract suite did not run\n`);
    return undefined;
  }
  const server = await startNatsServer();
  const buses: NatsBus[] = [];
  return {
    async bus() {
      const bus = await NatsBus.connect({ servers: server.url, timeoutMs: 3000 });
      buses.push(bus);
      return bus;
    },
    async cleanup() {
      for (const b of buses) await b.close();
      await server.stop();
    },
  };
}
