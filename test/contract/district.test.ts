import { forEachBus } from "./buses.js";
import { districtContract } from "./district.contract.js";

forEachBus(districtContract);
