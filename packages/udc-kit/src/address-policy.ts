// Which network addresses a droplet may be made to connect to on a caller's behalf
// (proxy upstreams, health-check targets, Docker engines). Link-local and cloud metadata
// addresses are refused, and so are the mesh's own service ports on this host; an
// explicit allow-list (e.g. UPSTREAM_ALLOW=host:port,...) lets an operator make exceptions.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import { z } from 'zod';
import { InvalidRequest } from './errors.js';

/** The mesh's droplet ports (registry 8000 … 8500) and NATS (4222): refused on loopback. */
export const MESH_SERVICE_PORTS: readonly number[] = [8000, 8010, 8100, 8200, 8300, 8400, 8500, 4222];

export interface AllowEntry {
  /** An IP address (normalised) or a lower-case host name, as written in the setting. */
  host: string;
  /** A port, or '*' for every port of that host. */
  port: number | '*';
}

export interface AddressVerdict {
  ok: boolean;
  /** Why it was refused (never an echo of anything remote). */
  reason?: string;
}

export interface AddressPolicyOptions {
  /** host:port exceptions, checked before anything else. */
  allow?: readonly AllowEntry[];
  /** Ports refused on this host's addresses (loopback, unspecified). Default MESH_SERVICE_PORTS. */
  loopbackPorts?: readonly number[];
  /** Extra ports refused on loopback (e.g. the droplet's own PORT when it is not a default one). */
  extraLoopbackPorts?: readonly number[];
}

/** A 400 whose details name the refused host and port and the rule, in the UDC envelope. */
export class AddressRefused extends InvalidRequest {
  constructor(
    readonly host: string,
    readonly port: number,
    readonly reason: string,
    where?: string,
  ) {
    super(`${where ? `${where}: ` : ''}${formatHostPort(host, port)} is not allowed: ${reason}`, {
      reason: 'address_refused',
      host,
      port,
      rule: reason,
      ...(where ? { location: where } : {}),
    });
  }
}

export function formatHostPort(host: string, port: number | string): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

// ---- address arithmetic -------------------------------------------------------------

/** IPv6 text to 8 16-bit groups; undefined when it is not IPv6. */
function v6Groups(ip: string): number[] | undefined {
  if (isIP(ip) !== 6) return undefined;
  let text = ip.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // A trailing dotted IPv4 part becomes two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const o = dotted[1].split('.').map(Number);
    text = `${text.slice(0, -dotted[1].length)}${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = text.includes('::') ? 8 - h.length - t.length : 0;
  const groups = [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => Number.parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

const v4Text = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;

/**
 * The address as it will be reached: an IPv4 address embedded in IPv6 (mapped
 * ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d) is its IPv4 address.
 */
export function canonicalAddress(ip: string): string {
  const g = v6Groups(ip);
  if (!g) return ip;
  const zeros = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeros(5) && g[5] === 0xffff) return v4Text(g[6], g[7]);
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return v4Text(g[6], g[7]);
  if (zeros(6) && (g[6] !== 0 || g[7] > 1)) return v4Text(g[6], g[7]);
  return g.map((x) => x.toString(16)).join(':');
}

function v4Octets(ip: string): number[] {
  return ip.split('.').map(Number);
}

let interfaces: { at: number; addresses: Set<string> } | undefined;

/** This machine's own interface addresses (canonical), re-read at most every 30 s. */
function ownAddresses(): Set<string> {
  if (!interfaces || Date.now() - interfaces.at > 30_000) {
    const addresses = new Set<string>();
    for (const list of Object.values(networkInterfaces()))
      for (const i of list ?? []) addresses.add(canonicalAddress(i.address.split('%')[0]));
    interfaces = { at: Date.now(), addresses };
  }
  return interfaces.addresses;
}

/**
 * This host: loopback, an address that reaches it all the same (0.0.0.0/8, ::), or one of
 * its own interface addresses (a service listening on every interface answers there too).
 */
export function isLocalHostAddress(ip: string): boolean {
  const a = canonicalAddress(ip);
  if (isIP(a) === 4) {
    const [o0] = v4Octets(a);
    if (o0 === 127 || o0 === 0) return true;
  } else {
    const g = v6Groups(a);
    if (g?.slice(0, 7).every((x) => x === 0) && (g[7] === 0 || g[7] === 1)) return true;
  }
  return ownAddresses().has(a);
}

/** Link-local and cloud metadata addresses: 169.254.0.0/16, fe80::/10, 100.100.100.200, fd00:ec2::254. */
export function isMetadataAddress(ip: string): string | undefined {
  const a = canonicalAddress(ip);
  if (isIP(a) === 4) {
    const [o0, o1, o2, o3] = v4Octets(a);
    if (o0 === 169 && o1 === 254) return 'a link-local or cloud metadata address (169.254.0.0/16)';
    if (o0 === 100 && o1 === 100 && o2 === 100 && o3 === 200) return 'a cloud metadata address (100.100.100.200)';
    return undefined;
  }
  const g = v6Groups(a);
  if (!g) return undefined;
  if ((g[0] & 0xffc0) === 0xfe80) return 'a link-local address (fe80::/10)';
  if (g[0] === 0xfd00 && g[1] === 0x0ec2 && g.slice(2, 7).every((x) => x === 0) && g[7] === 0x254)
    return 'a cloud metadata address (fd00:ec2::254)';
  return undefined;
}

// ---- the allow-list setting ----------------------------------------------------------

function normaliseHost(host: string): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return isIP(bare) ? canonicalAddress(bare) : bare.toLowerCase().replace(/\.$/, '');
}

/** `host:port,[v6]:port,host:*` → entries; throws with the bad entry named. */
export function parseAllowList(raw: string | undefined): AllowEntry[] {
  const out: AllowEntry[] = [];
  for (const item of (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5}|\*)$/.exec(item);
    const port = m && (m[2] === '*' ? '*' : Number(m[2]));
    if (!m || port === null || (port !== '*' && (port < 1 || port > 65535)))
      throw new Error(`'${item.slice(0, 80)}' is not host:port (or [ipv6]:port, or host:*)`);
    out.push({ host: normaliseHost(m[1]), port });
  }
  return out;
}

/** A config field for an allow-list: `HOST:PORT,...`, empty by default. */
export const addressAllowListSetting = z
  .string()
  .optional()
  .transform((v, ctx) => {
    try {
      return parseAllowList(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

// ---- the policy ----------------------------------------------------------------------

export type ResolveAll = (host: string) => Promise<string[]>;

/** getaddrinfo (so /etc/hosts counts), every address, bounded by a timeout. */
export function resolveAll(timeoutMs = 3000): ResolveAll {
  return (host) =>
    new Promise<string[]>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`DNS lookup of ${host} timed out after ${timeoutMs} ms`)), timeoutMs);
      t.unref();
      dnsLookup(host, { all: true }, (err, addrs) => {
        clearTimeout(t);
        if (err) reject(err);
        else resolve(addrs.map((a) => a.address));
      });
    });
}

export class AddressPolicy {
  private allow: readonly AllowEntry[];
  private loopbackPorts: ReadonlySet<number>;

  constructor(opts: AddressPolicyOptions = {}) {
    this.allow = opts.allow ?? [];
    this.loopbackPorts = new Set([...(opts.loopbackPorts ?? MESH_SERVICE_PORTS), ...(opts.extraLoopbackPorts ?? [])]);
  }

  private allowed(host: string | undefined, ip: string | undefined, port: number): boolean {
    const names = new Set([host && normaliseHost(host), ip && normaliseHost(ip)].filter(Boolean) as string[]);
    return this.allow.some((e) => names.has(e.host) && (e.port === '*' || e.port === port));
  }

  /**
   * One resolved address. `host` is the name it was resolved from, when there was one:
   * an allow-list entry may name either.
   */
  checkAddress(ip: string, port: number, host?: string): AddressVerdict {
    if (this.allowed(host, ip, port)) return { ok: true };
    const metadata = isMetadataAddress(ip);
    if (metadata) return { ok: false, reason: metadata };
    if (isLocalHostAddress(ip) && this.loopbackPorts.has(port))
      return { ok: false, reason: `port ${port} on this host is one of the mesh's own services` };
    return { ok: true };
  }

  /**
   * A host (IP or name) and port: a name is resolved and every address it has must
   * pass. A name that does not resolve passes here (nothing to reach); whoever connects
   * later checks again (`lookupFor`).
   */
  async check(
    host: string,
    port: number,
    resolve: ResolveAll = resolveAll(),
  ): Promise<AddressVerdict & { addresses: string[]; resolved: boolean }> {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    if (isIP(bare)) return { ...this.checkAddress(bare, port), addresses: [bare], resolved: true };
    if (this.allowed(bare, undefined, port)) return { ok: true, addresses: [], resolved: false };
    let addresses: string[];
    try {
      addresses = await resolve(bare);
    } catch {
      return { ok: true, addresses: [], resolved: false };
    }
    for (const a of addresses) {
      const v = this.checkAddress(a, port, bare);
      if (!v.ok) return { ok: false, reason: `${bare} resolves to ${a}, ${v.reason}`, addresses, resolved: true };
    }
    return { ok: true, addresses, resolved: true };
  }

  /** `check`, throwing AddressRefused (a 400 in the UDC envelope) when refused. */
  async assert(host: string, port: number, where?: string, resolve?: ResolveAll): Promise<void> {
    const v = await this.check(host, port, resolve);
    if (!v.ok) throw new AddressRefused(host, port, v.reason ?? 'refused', where);
  }

  /**
   * A `lookup` for net.connect / http.request that refuses a name resolving to a refused
   * address at the moment of connecting (so a name cannot be re-pointed after it was
   * checked). IP literals never reach a lookup: check them with `checkAddress`.
   */
  lookupFor(port: number): LookupFunction {
    return ((hostname: string, options: { all?: boolean; family?: number | string }, callback: (...args: unknown[]) => void) => {
      const opts = typeof options === 'object' && options ? options : {};
      dnsLookup(hostname, { ...(opts as object), all: true }, (err, addrs: LookupAddress[]) => {
        if (err) return callback(err);
        for (const a of addrs) {
          const v = this.checkAddress(a.address, port, hostname);
          if (!v.ok) return callback(addressRefusedError(hostname, port, v.reason ?? 'refused'));
        }
        if (addrs.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }));
        if (opts.all) callback(null, addrs);
        else callback(null, addrs[0].address, addrs[0].family);
      });
    }) as unknown as LookupFunction;
  }
}

/** The error a refused connection fails with (code ADDRESS_REFUSED). */
export function addressRefusedError(host: string, port: number, reason: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${formatHostPort(host, port)} is not allowed: ${reason}`), { code: 'ADDRESS_REFUSED' });
}
