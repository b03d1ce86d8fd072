import { forEachBus } from "./buses.js";
import { leaseContract } from "./lease.contract.js";

forEachBus(leaseContract);
