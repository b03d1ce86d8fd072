/** Constants of the OLPC record formats, as the XO firmware (security.fth) and bios-crypto fix them. */

/** PKCS#1 RSAPublicKey DER of an RSA-2048 key with e = 65537: 270 bytes, as 540 hex digits. */
export const KEY01_HEX_LENGTH = 540;
/** A key id is the last 32 bytes of that DER; the firmware tail-matches it. */
export const KEY_ID_HEX_LENGTH = 64;
/** RSA-2048 signatures are 256 bytes, left-padded, as lower-case hex. */
export const SIGNATURE_HEX_LENGTH = 512;
/** The firmware demands PSS salt length 8; Node's default (the maximum) is refused by a real XO. */
export const PSS_SALT_LENGTH = 8;
/** The expiry text that means "never expires". */
export const NEVER_EXPIRES_TEXT = "00000000T000000Z";
/** The firmware reads at most this many bytes per lease line (LF included). */
export const MAX_LINE_BYTES = 8192;
/**
 * sig02 chains sugar-server accepts: a v2 lease (1 link) or a delegated lease
 * (root → server, 2 links). The firmware walks up to 100, but nothing in the
 * OLPC tool chain makes longer chains, so longer ones are refused at import.
 */
export const MAX_CHAIN_LINKS = 2;
/** The only disposition an `act01` activation lease carries (`A` is for `dev01` developer keys). */
export const LEASE_DISPOSITION = "K";
/** Every PKCS#1 DER of RSA-2048/e=65537 starts and ends with these bytes. */
export const KEY01_PREFIX = "3082010a0282010100";
/** See KEY01_PREFIX: the DER ends with the exponent 65537. */
export const KEY01_SUFFIX = "0203010001";
/** The firmware treats a clock earlier than this as unset: every lease counts as expired. */
export const EARLIEST_TRUSTED_CLOCK = Date.UTC(2007, 0, 1);
