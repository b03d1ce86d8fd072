import { forEachBus } from "./buses.js";
import { leaseStolenPagesContract } from "./lease-stolen-pages.contract.js";

forEachBus(leaseStolenPagesContract);
