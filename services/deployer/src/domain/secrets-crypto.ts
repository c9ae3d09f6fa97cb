import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export interface SealedSecret {
  iv: string;
  tag: string;
  ciphertext: string;
}

/** DEPLOYER_MASTER_KEY: exactly 32 bytes, as 64 hex characters or base64. */
export function parseMasterKey(value: string): Buffer {
  const v = value.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(v)
    ? Buffer.from(v, 'hex')
    : /^[A-Za-z0-9+/_-]+={0,2}$/.test(v)
      ? Buffer.from(v, 'base64')
      : undefined;
  if (!key || key.length !== 32) throw new Error('must be 32 bytes, as 64 hex characters or base64');
  return key;
}

/** AES-256-GCM; `context` (project/env/name) is bound as additional data so a sealed value cannot be moved to another name. */
export function sealSecret(key: Buffer, plaintext: string, context: string): SealedSecret {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') };
}

export function openSecret(key: Buffer, sealed: SealedSecret, context: string): string {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64'));
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]).toString('utf8');
}
