/**
 * KV keys allow [-/_=.A-Za-z0-9] and treat dots as separators: a plain id is used as
 * it is, anything else is base64url-encoded behind "=" (which no plain id contains).
 */
export function keyPart(id: string): string {
  return /^[A-Za-z0-9_-]+$/.test(id) ? id : `=${Buffer.from(id).toString('base64url')}`;
}

export function fromKeyPart(part: string): string {
  return part.startsWith('=') ? Buffer.from(part.slice(1), 'base64url').toString() : part;
}
