import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { CliError } from './errors.js';

/**
 * A mesh backup on disk: `DMBACKUP1` | scrypt salt (16) | GCM iv (12) | GCM tag (16) | ciphertext.
 * The plaintext is the gzipped JSON of every droplet's bucket dump; the header is
 * authenticated with it (AAD), so a changed header fails like a wrong passphrase.
 */
const MAGIC = Buffer.from('DMBACKUP1');
/** scrypt N=2^15, r=8, p=1: ~100 ms and 32 MiB per try, OWASP's floor for scrypt. */
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
export const MIN_PASSPHRASE = 12;

function deriveKey(passphrase: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(passphrase, salt, 32, SCRYPT, (err, key) => (err ? reject(err) : resolve(key))));
}

function checkPassphrase(passphrase: string): void {
  if (passphrase.length < MIN_PASSPHRASE)
    throw new CliError('INVALID_REQUEST', `the backup passphrase must be at least ${MIN_PASSPHRASE} characters`);
}

export async function sealBackup(plain: unknown, passphrase: string): Promise<Buffer> {
  checkPassphrase(passphrase);
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', await deriveKey(passphrase, salt), iv);
  cipher.setAAD(MAGIC);
  const body = Buffer.concat([cipher.update(gzipSync(JSON.stringify(plain))), cipher.final()]);
  return Buffer.concat([MAGIC, salt, iv, cipher.getAuthTag(), body]);
}

export async function openBackup(file: Buffer, passphrase: string): Promise<unknown> {
  checkPassphrase(passphrase);
  const head = MAGIC.length;
  if (file.length < head + 44 || !file.subarray(0, head).equals(MAGIC))
    throw new CliError('INVALID_REQUEST', 'not a meshctl backup file (no DMBACKUP1 header)');
  const salt = file.subarray(head, head + 16);
  const iv = file.subarray(head + 16, head + 28);
  const tag = file.subarray(head + 28, head + 44);
  const decipher = createDecipheriv('aes-256-gcm', await deriveKey(passphrase, salt), iv);
  decipher.setAAD(MAGIC);
  decipher.setAuthTag(tag);
  let zipped: Buffer;
  try {
    zipped = Buffer.concat([decipher.update(file.subarray(head + 44)), decipher.final()]);
  } catch {
    throw new CliError('UNAUTHORIZED', 'cannot open the backup: wrong passphrase, or the file was changed');
  }
  return JSON.parse(gunzipSync(zipped).toString('utf8'));
}
