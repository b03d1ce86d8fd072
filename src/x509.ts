/**
 * @peculiar/x509, set up once for every user (the keyring's CA, `tls init`):
 * the `reflect-metadata` polyfill first (its dependency tsyringe throws at
 * import without one), then Node's WebCrypto as its crypto provider. Import
 * the library from here, never directly.
 */
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
export const subtle = webcrypto.subtle;
