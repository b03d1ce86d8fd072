import { authContract } from "./auth.contract.js";
import { forEachBus } from "./buses.js";

forEachBus(authContract);
