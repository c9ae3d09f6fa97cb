import { z } from 'zod';

/**
 * The stack file: one zod schema, published as JSON Schema (GET /stacks/schema.json and
 * stack.schema.json). Every object is strict: an unknown key is an error with its path.
 * Cross-field rules (domains unique, names short enough for the deployer) are in
 * `stackFile`'s superRefine so that they also report paths.
 */

/** Names of stacks, servers, projects, environments and services: the deployer's name rule. */
export const nameSchema = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/, 'must be 1-32 of [a-z0-9-], starting and ending with a letter or digit');
export const envVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an environment variable name');
const envVars = z.record(envVarName, z.string().max(32_768));
const domainSchema = z
  .string()
  .max(253)
  .regex(/^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$|^localhost$/, 'must be a lower-case domain name');
const healthPath = z.string().regex(/^\/[A-Za-z0-9._~/-]{0,200}$/, 'must be an absolute path of [A-Za-z0-9._~/-]');
const imageRef = z.string().regex(/^[a-z0-9][a-z0-9._/:@-]{0,254}$/i, 'must be an image reference such as repo/name:tag');
const tag = z
  .string()
  .max(63)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, _ and -');
export const routeName = z
  .string()
  .regex(/^[a-z0-9-]{1,63}$/, 'must be 1-63 of [a-z0-9-]')
  .refine((n) => !n.startsWith('app-'), 'names starting with app- belong to deployed services');

export const PROVIDERS = ['digitalocean', 'hetzner', 'vultr', 'local'] as const;

export const serverSchema = z.strictObject({
  provider: z.enum(PROVIDERS),
  region: z.string().min(1).max(64),
  size: z.string().min(1).max(64),
  image: z.string().min(1).max(255),
  count: z.number().int().min(0).max(50).default(1),
  tags: z.array(tag).max(10).default([]),
  /**
   * The deployer's server this machine's Docker Engine is (e.g. `local`, or the id it was
   * provisioned as). Default: the instance's name, `<stack>-<server>-<index>`. Only with count 1.
   */
  engine: nameSchema.optional(),
  /**
   * Provision each copy through the deployer (its one-call POST /servers/provision): the
   * machine is created with a Docker Engine that registers as deployer server
   * `<stack>-<server>-<index>`, so services can be placed on it. `local` makes a real engine
   * on this host; a cloud machine must boot and report within the deployer's provisioning
   * timeout, else the step fails with the deployer's reason. Not with `engine`.
   */
  provision: z.boolean().optional(),
});

/** A public git repository (or file://) with a Dockerfile, or a Node/Python project the deployer writes one for. */
export const gitSource = z.strictObject({
  url: z
    .string()
    .max(2000)
    .regex(
      /^(https?:\/\/|git:\/\/|file:\/\/)[^\s@]+$/,
      'must be an http(s)://, git:// or file:// URL without credentials (private repositories: deploy them with the deployer)',
    ),
  /** A tag or commit pins what runs; a branch is read at each deploy. */
  ref: z
    .string()
    .regex(/^[A-Za-z0-9._/-]{1,200}$/, 'must be a branch, tag or commit')
    .refine((r) => !r.startsWith('-') && !r.includes('..'), 'must be a branch, tag or commit')
    .default('HEAD'),
  path: z
    .string()
    .regex(/^[A-Za-z0-9._/-]{1,200}$/)
    .refine((p) => !p.split('/').includes('..') && !p.startsWith('/'), 'must stay inside the repository')
    .optional(),
});

export const serviceSchema = z.strictObject({
  type: z.enum(['web', 'worker']).default('web'),
  /** The image to run (the deployer pulls it, or finds it on the server). Give `image` or `git`. */
  image: imageRef.optional(),
  /** Build from a git repository instead of running an image. */
  git: gitSource.optional(),
  /** Public domain routed through proxy-manager (web only). */
  domain: domainSchema.optional(),
  /** Obtain a certificate for the domain over ACME and serve HTTPS. */
  https: z.boolean().default(false),
  replicas: z.number().int().min(1).max(20).default(1),
  health_path: healthPath.default('/health'),
  env: envVars.default({}),
  /** Secret NAMES only; values are set with the deployer's PUT .../secrets/{name} and never live in the file. */
  secrets: z.array(envVarName).max(100).default([]),
  /** Servers of this stack (names under `servers:`) the replicas run on, spread over every copy; default: the deployer decides. */
  placement: z.array(nameSchema).min(1).max(20).optional(),
});

export const environmentSchema = z.strictObject({
  env: envVars.default({}),
  /** Secret names every service of this environment needs. */
  secrets: z.array(envVarName).max(100).default([]),
  services: z.record(nameSchema, serviceSchema).default({}),
});

export const projectSchema = z.strictObject({
  description: z.string().max(1000).optional(),
  environments: z.record(nameSchema, environmentSchema).default({}),
});

export const routeSchema = z.strictObject({
  domain: domainSchema,
  upstreams: z
    .array(
      z.strictObject({
        host: z.string().regex(/^[A-Za-z0-9.:-]{1,253}$/, 'must be a host name or an IP address'),
        port: z.number().int().min(1).max(65535),
      }),
    )
    .min(1)
    .max(32),
  health_path: healthPath.default('/health'),
  https: z.boolean().default(false),
  /** Probe the upstreams before the route is written (proxy-manager's require_healthy). */
  require_healthy: z.boolean().default(true),
  websocket: z.boolean().default(false),
});

/** Query parameters whose value is a credential. */
const SECRET_PARAM = /^(key|sig|auth|code|apikey|api[_-]key|access[_-]key)$|token|secret|signature|passw/i;

/**
 * Why a webhook URL looks like it carries a credential in its path or query, or undefined:
 * a query parameter named like one (`token=`, `key=`, `sig=`...), Slack's
 * `/services/T…/B…/…`, or a long random-looking path segment (20+ of [A-Za-z0-9_-] with a
 * digit or mixed case, e.g. Discord's `/api/webhooks/<id>/<token>`).
 */
export function webhookCredential(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  for (const name of u.searchParams.keys()) if (SECRET_PARAM.test(name)) return `its query parameter '${name}'`;
  if (/(^|\.)slack\.com$/i.test(u.hostname) && u.pathname.startsWith('/services/')) return "Slack's /services/… path";
  for (const seg of u.pathname.split('/'))
    if (/^[A-Za-z0-9_-]{20,}$/.test(seg) && (/\d/.test(seg) || (/[a-z]/.test(seg) && /[A-Z]/.test(seg))))
      return 'a long random-looking path segment';
  return undefined;
}

/** Who is told when something of the mesh goes down: the health-monitor's recipients for this stack. */
export const alertsSchema = z.strictObject({
  emails: z.array(z.email()).max(50).default([]),
  webhooks: z
    .array(
      z
        .url({ protocol: /^https?$/ })
        .max(2000)
        .refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), 'must not carry credentials (user:password@)')
        .superRefine((u, ctx) => {
          const why = webhookCredential(u);
          if (why)
            ctx.addIssue({
              code: 'custom',
              message: `looks like it carries a token (${why}): a secret does not go in the stack file; give this webhook to the health-monitor's ALERT_WEBHOOK_URLS (its env file) instead`,
            });
        }),
    )
    .max(20)
    .default([]),
});

/** The longest route name proxy-manager takes; a deployed web service's route is its target id. */
const ROUTE_MAX = 63;

export const stackFile = z
  .strictObject({
    version: z.literal(1).default(1),
    /** Repair drift found by the periodic check by applying this file again (never destructive steps). */
    reconcile: z.boolean().default(false),
    servers: z.record(nameSchema, serverSchema).default({}),
    projects: z.record(nameSchema, projectSchema).default({}),
    /** Routes that are not a deployed service: a domain to fixed upstreams. */
    routes: z.record(routeName, routeSchema).default({}),
    /** Alert recipients and webhooks, set in the health-monitor while the stack exists. */
    alerts: alertsSchema.optional(),
  })
  .superRefine((s, ctx) => {
    const domains = new Map<string, string>();
    const claim = (domain: string, path: PropertyKey[]) => {
      const prev = domains.get(domain);
      if (prev) ctx.addIssue({ code: 'custom', path, message: `domain ${domain} is already used by ${prev}` });
      else domains.set(domain, path.join('.'));
    };
    for (const [p, project] of Object.entries(s.projects))
      for (const [e, env] of Object.entries(project.environments))
        for (const [name, svc] of Object.entries(env.services)) {
          const at = ['projects', p, 'environments', e, 'services', name];
          const deployerName = deployerServiceName(name, e);
          if (!nameSchema.safeParse(deployerName).success)
            ctx.addIssue({
              code: 'custom',
              path: at,
              message: `service and environment names together ('${deployerName}') must be at most 32 characters`,
            });
          if ((svc.image === undefined) === (svc.git === undefined))
            ctx.addIssue({ code: 'custom', path: [...at, 'image'], message: 'give exactly one of image and git' });
          if (svc.type === 'worker' && svc.domain)
            ctx.addIssue({ code: 'custom', path: [...at, 'domain'], message: 'a worker has no domain' });
          if (svc.https && !svc.domain) ctx.addIssue({ code: 'custom', path: [...at, 'https'], message: 'https needs a domain' });
          for (const [i, server] of (svc.placement ?? []).entries()) {
            const def = s.servers[server];
            if (!def)
              ctx.addIssue({
                code: 'custom',
                path: [...at, 'placement', i],
                message: `no server '${server}' in servers: (a service is placed on this stack's servers)`,
              });
            else if (def.count === 0)
              ctx.addIssue({ code: 'custom', path: [...at, 'placement', i], message: `server '${server}' has count 0: nothing to run on` });
          }
          if (svc.domain) {
            claim(svc.domain, [...at, 'domain']);
            const route = targetId(p, name, e);
            if (route.length > ROUTE_MAX)
              ctx.addIssue({
                code: 'custom',
                path: at,
                message: `its route name '${route}' is longer than ${ROUTE_MAX} characters: use shorter project/service/environment names`,
              });
          }
        }
    for (const [name, r] of Object.entries(s.routes)) claim(r.domain, ['routes', name, 'domain']);
    for (const [name, sv] of Object.entries(s.servers))
      if (sv.engine !== undefined && sv.count !== 1)
        ctx.addIssue({ code: 'custom', path: ['servers', name, 'engine'], message: 'engine names one machine: only with count 1' });
      else if (sv.engine !== undefined && sv.provision)
        ctx.addIssue({
          code: 'custom',
          path: ['servers', name, 'provision'],
          message: 'a provisioned server is its own engine (<stack>-<server>-<index>): give provision or engine, not both',
        });
  });

export type StackFile = z.infer<typeof stackFile>;
export type StackServer = z.infer<typeof serverSchema>;
export type StackService = z.infer<typeof serviceSchema>;
export type StackRoute = z.infer<typeof routeSchema>;
export type StackAlerts = z.infer<typeof alertsSchema>;

/** The deployer keeps one domain per service, so each environment's copy is its own deployer service. */
export const deployerServiceName = (service: string, environment: string) => `${service}-${environment}`;
/** The deployer's target (and route name) for a stack service. */
export const targetId = (project: string, service: string, environment: string) =>
  `app-${project}-${deployerServiceName(service, environment)}-${environment}`;

/** The JSON Schema of the stack file (what an editor completes against). */
export function stackJsonSchema(): Record<string, unknown> {
  return {
    ...(z.toJSONSchema(stackFile, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>),
    $id: 'https://droplet-mesh.local/schemas/stack.schema.json',
    title: 'Droplet Mesh stack',
  };
}
