import { openSecret, sealSecret, type SealedSecret } from './secrets-crypto.js';

/**
 * Git credentials never live in a stored or returned URL. Userinfo of an http(s) URL and
 * an ssh deploy key are sealed (AES-256-GCM, like secrets), bound to the clean URL they
 * were given with, so sealed credentials cannot be moved to another repository.
 */
export interface GitCredentials {
  /** basic: user[:password] from an http(s) URL; ssh_key: a deploy key for an ssh URL. */
  kind: 'basic' | 'ssh_key';
  sealed: SealedSecret;
}

/** What the clone needs, opened just before it. */
export type GitAuth = { kind: 'basic'; username: string; password?: string } | { kind: 'ssh_key'; key: string; knownHosts?: string };

export const REDACTED = '[redacted]';
const SCP_LIKE = /^[\w.-]+@[\w.-]+:[^\s]+$/;

export const isSshUrl = (url: string) => /^ssh:\/\//i.test(url) || SCP_LIKE.test(url);

const contextFor = (cleanUrl: string) => `git/${cleanUrl}`;

function parse(url: string): URL | undefined {
  if (SCP_LIKE.test(url)) return undefined;
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

/**
 * Why this URL's userinfo is not acceptable, if it is not: credentials belong in http(s)
 * URLs (sealed) or in a deploy key (ssh); an ssh URL may name its user, never a password.
 */
export function urlCredentialProblem(url: string): string | undefined {
  const u = parse(url);
  if (!u || (!u.username && !u.password)) return undefined;
  if (u.protocol === 'http:' || u.protocol === 'https:') return undefined;
  if (u.protocol === 'ssh:') return u.password ? 'an ssh URL takes no password: give a deploy_key' : undefined;
  return `a ${u.protocol}// URL takes no credentials`;
}

/** The URL without userinfo, and the userinfo (http(s) only; decoded). */
export function splitUrlCredentials(url: string): { url: string; username?: string; password?: string } {
  const u = parse(url);
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || (!u.username && !u.password)) return { url };
  const username = decodeURIComponent(u.username);
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  u.username = '';
  u.password = '';
  return { url: u.toString(), username, password };
}

/** A URL fit to show or log: any http(s)/git userinfo, or an ssh password, becomes [redacted]. */
export function redactGitUrl(url: string, credentials?: GitCredentials['kind']): string {
  const u = parse(url);
  if (!u) return url;
  const secretInfo = u.protocol === 'ssh:' ? !!u.password : !!(u.username || u.password);
  if (secretInfo || credentials === 'basic') {
    // The authority ends at the first '/'; its userinfo, at the last '@' before that.
    const m = /^([a-z][a-z0-9+.-]*:\/\/)(?:[^/]*@)?(.*)$/i.exec(url);
    if (m) return `${m[1]}${REDACTED}@${m[2]}`;
  }
  return url;
}

export interface PlainGitInput {
  url: string;
  ref: string;
  path?: string;
  deploy_key?: string;
  known_hosts?: string;
  credentials?: GitCredentials;
}

export interface SealedGitSource {
  url: string;
  ref: string;
  path?: string;
  credentials?: GitCredentials;
}

/**
 * A git source as it may be stored: userinfo and deploy key sealed, the URL clean.
 * Already-sealed credentials (a saved deploy config) pass through unchanged.
 */
export function sealGitSource(key: Buffer, s: PlainGitInput): SealedGitSource {
  const split = splitUrlCredentials(s.url);
  const base = { url: split.url, ref: s.ref, ...(s.path ? { path: s.path } : {}) };
  if (split.username !== undefined || split.password !== undefined) {
    const payload = JSON.stringify({
      username: split.username ?? '',
      ...(split.password !== undefined ? { password: split.password } : {}),
    });
    return { ...base, credentials: { kind: 'basic', sealed: sealSecret(key, payload, contextFor(split.url)) } };
  }
  if (s.deploy_key) {
    const keyText = s.deploy_key.endsWith('\n') ? s.deploy_key : `${s.deploy_key}\n`;
    const payload = JSON.stringify({ key: keyText, ...(s.known_hosts ? { known_hosts: s.known_hosts } : {}) });
    return { ...base, credentials: { kind: 'ssh_key', sealed: sealSecret(key, payload, contextFor(split.url)) } };
  }
  return { ...base, ...(s.credentials ? { credentials: s.credentials } : {}) };
}

/** The sealed credentials, opened for a clone (undefined when there are none). */
export function openGitAuth(key: Buffer, s: SealedGitSource): GitAuth | undefined {
  if (!s.credentials) {
    // A record stored before credentials were sealed: its URL may still carry them.
    const split = splitUrlCredentials(s.url);
    return split.username !== undefined ? { kind: 'basic', username: split.username, password: split.password } : undefined;
  }
  const plain = JSON.parse(openSecret(key, s.credentials.sealed, contextFor(s.url))) as Record<string, string | undefined>;
  return s.credentials.kind === 'basic'
    ? { kind: 'basic', username: plain.username ?? '', password: plain.password }
    : { kind: 'ssh_key', key: plain.key ?? '', knownHosts: plain.known_hosts };
}

/** Values a log line must never show for this auth. */
export function authSecrets(a: GitAuth | undefined): string[] {
  if (!a) return [];
  if (a.kind === 'ssh_key') return [a.key, ...a.key.split('\n').filter((l) => l.length >= 8 && !l.startsWith('-----'))];
  // Without a password the user name is the token (https://TOKEN@host/...).
  return a.password ? [a.password, Buffer.from(`${a.username}:${a.password}`).toString('base64')] : [a.username];
}

/** A git source as the API shows it: the URL redacted, how it authenticates, nothing sealed. */
export function gitSourceView(s: SealedGitSource & { deploy_key?: string; known_hosts?: string }) {
  const { credentials, url, ref, path } = s;
  return {
    url: redactGitUrl(url, credentials?.kind),
    ref,
    ...(path ? { path } : {}),
    ...(credentials ? { auth: credentials.kind } : {}),
  };
}
