import { domainToASCII } from 'node:url';
import { isIP } from 'node:net';
import { z } from 'zod';

// Everything a client sends passes one of these before it can reach a rendered file.
// The allowed alphabets contain no `;`, `{`, `}`, whitespace, `$`, quotes or `#`, so a
// value can never end a directive or open a block, whatever it is.

export const ROUTE_NAME = /^[a-z0-9-]{1,63}$/;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export const routeNameSchema = z.string().regex(ROUTE_NAME, 'must be 1-63 of [a-z0-9-]');

/** A DNS hostname in ASCII (an IDN becomes punycode), lower case, no trailing dot. */
export function normalizeHostname(input: string): string | undefined {
  if (input.length === 0 || input.length > 253) return undefined;
  // Reject anything outside printable non-space characters before IDN mapping, which
  // would otherwise silently drop or map some of them.
  if (/[\s\u0000-\u001f\u007f;{}$'"`\\#/:?@[\]%,*]/.test(input)) return undefined;
  const ascii = domainToASCII(input.toLowerCase());
  if (!ascii || ascii.length > 253) return undefined;
  const labels = ascii.split('.');
  if (!labels.every((l) => LABEL.test(l))) return undefined;
  if (/^\d+$/.test(labels[labels.length - 1])) return undefined; // looks like a mangled IPv4
  return ascii;
}

export const hostnameSchema = z
  .string()
  .max(253)
  .transform((v, ctx) => {
    const h = normalizeHostname(v);
    if (!h) {
      ctx.addIssue({ code: 'custom', message: 'must be a valid hostname (IDN allowed, no wildcards, ports or paths)' });
      return z.NEVER;
    }
    return h;
  });

/** A hostname, an IPv4 address, or an IPv6 address (brackets optional). */
export const upstreamHostSchema = z
  .string()
  .max(253)
  .transform((v, ctx) => {
    const bare = v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v;
    if (isIP(bare) === 4) return bare;
    // Zone ids (fe80::1%eth0) are refused: `%` has no business in a config file.
    if (isIP(bare) === 6 && !bare.includes('%')) return bare.toLowerCase();
    const h = normalizeHostname(v);
    if (!h) {
      ctx.addIssue({ code: 'custom', message: 'must be a hostname or an IP address' });
      return z.NEVER;
    }
    return h;
  });

const portSchema = z.number().int().min(1).max(65535);

export const healthPathSchema = z.string().regex(/^\/[A-Za-z0-9._~/-]{0,200}$/, 'must be an absolute path of [A-Za-z0-9._~/-]');

export const upstreamSchema = z.strictObject({
  host: upstreamHostSchema,
  port: portSchema,
  weight: z.number().int().min(1).max(100).default(1),
});

export const LB_METHODS = ['round_robin', 'least_conn'] as const;

/** The body of `PUT /proxies/{name}` (and of the `route.upsert` message, without `name`). */
export const routeBodySchema = z
  .strictObject({
    domain: hostnameSchema,
    upstreams: z.array(upstreamSchema).min(1).max(32).optional(),
    upstream_host: upstreamHostSchema.optional(),
    upstream_port: portSchema.optional(),
    require_healthy: z.boolean().default(true),
    enable_ssl: z.boolean().default(false),
    health_path: healthPathSchema.default('/health'),
    websocket: z.boolean().default(false),
    lb: z.enum(LB_METHODS).default('round_robin'),
  })
  .superRefine((b, ctx) => {
    const single = b.upstream_host !== undefined || b.upstream_port !== undefined;
    if (b.upstreams && single)
      ctx.addIssue({ code: 'custom', path: ['upstreams'], message: 'give either upstreams or upstream_host/upstream_port, not both' });
    else if (!b.upstreams && !single)
      ctx.addIssue({ code: 'custom', path: ['upstreams'], message: 'upstreams (or upstream_host and upstream_port) is required' });
    else if (single && (b.upstream_host === undefined || b.upstream_port === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [b.upstream_host === undefined ? 'upstream_host' : 'upstream_port'],
        message: 'upstream_host and upstream_port go together',
      });
    }
  })
  .transform(
    ({ upstream_host, upstream_port, upstreams, ...rest }): RouteSpec => ({
      ...rest,
      upstreams: upstreams ?? [{ host: upstream_host as string, port: upstream_port as number, weight: 1 }],
    }),
  );

export interface Upstream {
  host: string;
  port: number;
  weight: number;
}

export interface RouteSpec {
  domain: string;
  upstreams: Upstream[];
  require_healthy: boolean;
  enable_ssl: boolean;
  health_path: string;
  websocket: boolean;
  lb: (typeof LB_METHODS)[number];
}

/** Desired state of one route, as stored in the `routes` bucket. */
export interface RouteRecord extends RouteSpec {
  name: string;
  created_at: string;
  updated_at: string;
}
