import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SESSION_SECRET_FILE = 'console-session.secret';

/**
 * The secret session tokens are sealed with: CONSOLE_SESSION_SECRET when set, else one generated
 * once into DATA_DIR (mode 0600) and reused, so a restarted console opens the sessions it sealed.
 * Replicas share sessions only when they share this secret (same DATA_DIR, or the variable).
 */
export function loadSessionSecret(opts: { secret?: string; dataDir: string }): {
  secret: string;
  source: 'env' | 'file' | 'generated';
  file?: string;
} {
  if (opts.secret) return { secret: opts.secret, source: 'env' };
  const file = join(opts.dataDir, SESSION_SECRET_FILE);
  if (existsSync(file)) {
    const secret = readFileSync(file, 'utf8').trim();
    if (secret.length >= 32) return { secret, source: 'file', file };
  }
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString('base64url');
  // wx: two replicas starting at once on one DATA_DIR keep the first one's secret.
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const existing = readFileSync(file, 'utf8').trim();
    if (existing.length >= 32) return { secret: existing, source: 'file', file };
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  return { secret, source: 'generated', file };
}
