import bcrypt from 'bcryptjs';

/**
 * One htpasswd line as the registry reads it (distribution accepts bcrypt only). The
 * registry runs bcrypt on every authenticated request (a pull is several), and cost 10
 * took ~0.5 s a request on a loaded 2-core machine; the default 6 is 16 times cheaper. The
 * mesh's password is 24 random bytes, so brute force is out of reach at any cost.
 */
export function htpasswdLine(username: string, password: string, cost = 6): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(username)) throw new Error('a registry username is 1-64 of A-Z a-z 0-9 . _ -');
  return `${username}:${bcrypt.hashSync(password, cost)}\n`;
}

/** True when `password` matches the line's bcrypt hash (tests; the registry checks on its own). */
export function htpasswdMatches(line: string, password: string): boolean {
  const hash = line.trim().split(':').slice(1).join(':');
  return hash.length > 0 && bcrypt.compareSync(password, hash);
}
