import { authSessionsContract } from "./auth-sessions.contract.js";
import { forEachBus } from "./buses.js";

forEachBus(authSessionsContract);
