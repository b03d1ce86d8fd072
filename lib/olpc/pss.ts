/**
 * RSASSA-PSS as the firmware does it: SHA-256, MGF1-SHA-256 (OpenSSL's
 * default: the signature digest), salt length exactly 8; signatures are 512
 * lower-case hex.
 */
import { constants, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { PSS_SALT_LENGTH, SIGNATURE_HEX_LENGTH } from "./constants.js";

const PSS = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH } as const;
const toHex = (signature: Buffer) => signature.toString("hex").padStart(SIGNATURE_HEX_LENGTH, "0");

/** Signs on the calling thread. */
export function pssSign(data: Buffer, key: KeyObject): string {
  return toHex(cryptoSign("sha256", data, { key, ...PSS }));
}

/** Signs on libuv's thread pool (node:crypto's callback form), so a server signing many does not block its event loop. */
export function pssSignInThreadPool(data: Buffer, key: KeyObject): Promise<string> {
  return new Promise((resolve, reject) => {
    cryptoSign("sha256", data, { key, ...PSS }, (err, signature) => (err ? reject(err) : resolve(toHex(signature))));
  });
}

/** Verifies with salt length exactly 8, as the firmware does: a salt-32 signature fails. */
export function pssVerify(data: Buffer, key: KeyObject, signatureHex: string): boolean {
  const signature = Buffer.from(signatureHex, "hex");
  if (signature.length !== SIGNATURE_HEX_LENGTH / 2) return false;
  try {
    return cryptoVerify("sha256", data, { key, ...PSS }, signature);
  } catch {
    return false; // a signature node:crypto cannot even read (e.g. larger than the modulus) does not verify
  }
}
