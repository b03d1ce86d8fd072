import { forEachBus } from "./buses.js";
import { districtStolenPagesContract } from "./district-stolen-pages.contract.js";

forEachBus(districtStolenPagesContract);
