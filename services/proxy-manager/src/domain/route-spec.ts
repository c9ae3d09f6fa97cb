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
export const REDIRECT_STATUSES = [301, 302, 307, 308] as const;

/** nginx's own default (1m) silently answers 413 to ordinary uploads; this is the mesh's. */
export const DEFAULT_MAX_BODY_SIZE = '64m';

/** `client_max_body_size`: bytes, or k/m/g; `0` lifts the limit. */
export const bodySizeSchema = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,8}[kmgKMG]?)$/, 'must be a size such as 512k, 64m or 1g (0: no limit)')
  .transform((v) => v.toLowerCase());

/** A location prefix: plain path segments only (no regex, no `$`, spaces, quotes or `;`). */
export const pathPrefixSchema = z
  .string()
  .max(200)
  .regex(/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*\/?$/, 'must be a path prefix such as /api/ of [A-Za-z0-9._~/-] (not / itself)')
  .refine((v) => !v.split('/').some((seg) => seg === '.' || seg === '..'), 'must not contain . or .. segments');

/** Where a redirect sends clients: an http(s) URL of plain characters, no query or fragment. */
export const redirectUrlSchema = z
  .string()
  .max(500)
  .transform((v, ctx) => {
    const fail = () => {
      ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL of [A-Za-z0-9._~/:-], without query, fragment or credentials' });
      return z.NEVER;
    };
    if (!/^https?:\/\/[A-Za-z0-9._~/:[\]-]+$/.test(v)) return fail();
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      return fail();
    }
    if (u.username || u.password || u.search || u.hash) return fail();
    const host = u.hostname.startsWith('[') ? u.hostname : normalizeHostname(u.hostname);
    if (!host) return fail();
    const out = `${u.protocol}//${host}${u.port ? `:${u.port}` : ''}${u.pathname === '/' ? '' : u.pathname}`;
    if (!/^https?:\/\/[A-Za-z0-9._~/:[\]-]+$/.test(out)) return fail();
    return out;
  });

export const redirectSchema = z.strictObject({
  to: redirectUrlSchema,
  status: z
    .number()
    .int()
    .refine((s) => (REDIRECT_STATUSES as readonly number[]).includes(s), 'must be 301, 302, 307 or 308')
    .default(301),
  /** Append the request's path and query to `to`. */
  keep_path: z.boolean().default(true),
});
export type Redirect = z.infer<typeof redirectSchema>;

/** One more location of a domain: its own upstreams (or a redirect) under a path prefix. */
export const pathRouteSchema = z
  .strictObject({
    prefix: pathPrefixSchema,
    upstreams: z.array(upstreamSchema).min(1).max(32).optional(),
    redirect: redirectSchema.optional(),
    health_path: healthPathSchema.optional(),
    websocket: z.boolean().default(false),
    lb: z.enum(LB_METHODS).default('round_robin'),
  })
  .superRefine((p, ctx) => {
    if (!!p.upstreams === !!p.redirect) ctx.addIssue({ code: 'custom', path: ['upstreams'], message: 'give either upstreams or redirect' });
  });
export type PathRoute = z.infer<typeof pathRouteSchema>;

/** The body of `PUT /proxies/{name}` (and of the `route.upsert` message, without `name`). */
export const routeBodySchema = z
  .strictObject({
    domain: hostnameSchema,
    upstreams: z.array(upstreamSchema).max(32).optional(),
    upstream_host: upstreamHostSchema.optional(),
    upstream_port: portSchema.optional(),
    /** The whole domain answers with a redirect instead of proxying. */
    redirect: redirectSchema.optional(),
    paths: z.array(pathRouteSchema).max(32).default([]),
    require_healthy: z.boolean().default(true),
    enable_ssl: z.boolean().optional(),
    /** Same as enable_ssl (the deployer's and the issue's word for it). */
    https: z.boolean().optional(),
    health_path: healthPathSchema.default('/health'),
    websocket: z.boolean().default(false),
    lb: z.enum(LB_METHODS).default('round_robin'),
    max_body_size: bodySizeSchema.default(DEFAULT_MAX_BODY_SIZE),
    /** One JSON line per request in the shared access log (with the request id). */
    access_log: z.boolean().default(true),
  })
  .superRefine((b, ctx) => {
    const single = b.upstream_host !== undefined || b.upstream_port !== undefined;
    const many = b.upstreams !== undefined && b.upstreams.length > 0;
    if (b.redirect) {
      if (many || single)
        ctx.addIssue({ code: 'custom', path: ['redirect'], message: 'a redirect route has no upstreams (give one or the other)' });
    } else if (many && single)
      ctx.addIssue({ code: 'custom', path: ['upstreams'], message: 'give either upstreams or upstream_host/upstream_port, not both' });
    else if (!many && !single)
      ctx.addIssue({
        code: 'custom',
        path: ['upstreams'],
        message: 'upstreams (or upstream_host and upstream_port, or redirect) is required',
      });
    else if (single && (b.upstream_host === undefined || b.upstream_port === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [b.upstream_host === undefined ? 'upstream_host' : 'upstream_port'],
        message: 'upstream_host and upstream_port go together',
      });
    }
    if (b.https !== undefined && b.enable_ssl !== undefined && b.https !== b.enable_ssl)
      ctx.addIssue({ code: 'custom', path: ['https'], message: 'https and enable_ssl disagree (give one)' });
    const seen = new Set<string>();
    for (const [i, p] of b.paths.entries()) {
      if (seen.has(p.prefix)) ctx.addIssue({ code: 'custom', path: ['paths', i, 'prefix'], message: 'prefix given twice' });
      seen.add(p.prefix);
    }
  })
  .transform(
    ({ upstream_host, upstream_port, upstreams, https, enable_ssl, redirect, ...rest }): RouteSpec => ({
      ...rest,
      enable_ssl: enable_ssl ?? https ?? false,
      upstreams: redirect
        ? []
        : upstreams && upstreams.length > 0
          ? upstreams
          : [{ host: upstream_host as string, port: upstream_port as number, weight: 1 }],
      ...(redirect ? { redirect } : {}),
    }),
  );

export interface Upstream {
  host: string;
  port: number;
  weight: number;
}

export interface RouteSpec {
  domain: string;
  /** Empty for a redirect route. */
  upstreams: Upstream[];
  redirect?: Redirect;
  /** Further locations of the domain, each with its own upstreams or redirect. */
  paths: PathRoute[];
  require_healthy: boolean;
  enable_ssl: boolean;
  health_path: string;
  websocket: boolean;
  lb: (typeof LB_METHODS)[number];
  max_body_size: string;
  access_log: boolean;
}

/** Every set of upstreams a route proxies to, with the path its health is probed at. */
export function upstreamGroups(
  spec: Pick<RouteSpec, 'upstreams' | 'paths' | 'health_path'>,
): Array<{ upstreams: Upstream[]; health_path: string }> {
  return [
    { upstreams: spec.upstreams, health_path: spec.health_path },
    ...spec.paths.map((p) => ({ upstreams: p.upstreams ?? [], health_path: p.health_path ?? spec.health_path })),
  ].filter((g) => g.upstreams.length > 0);
}

/** Desired state of one route, as stored in the `routes` bucket. */
export interface RouteRecord extends RouteSpec {
  name: string;
  created_at: string;
  updated_at: string;
}
