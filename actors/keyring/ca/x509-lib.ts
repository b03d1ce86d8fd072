/**
 * @peculiar/x509 set up once: its Reflect polyfill first (it throws at import
 * without one), then Node's WebCrypto as its crypto provider. Every CA file
 * imports the library from here.
 */
import "./reflect-metadata.js";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
export const subtle = webcrypto.subtle;
