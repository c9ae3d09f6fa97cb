import { z } from 'zod';
import { isSshUrl, urlCredentialProblem, type GitCredentials } from './git-credentials.js';

/** Names of projects, services, environments: lowercase, DNS-label-like, no dots (they are KV key tokens). */
export const nameSchema = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/, 'must be 1-32 of [a-z0-9-], starting and ending with a letter or digit');
export const envVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an environment variable name');
export const envVars = z.record(envVarName, z.string().max(32_768)).refine((r) => Object.keys(r).length <= 200, 'at most 200 variables');
const domainSchema = z
  .string()
  .regex(/^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$|^localhost$/i, 'must be a domain name');
const healthPath = z.string().regex(/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,500}$/, 'must be a path starting with /');
const imageRef = z.string().regex(/^[a-z0-9][a-z0-9._/:@-]{0,254}$/i, 'must be an image reference such as repo/name:tag');

export const projectInput = z.object({ name: nameSchema, description: z.string().max(1000).optional() });
export type Project = z.infer<typeof projectInput> & { created_at: string; updated_at: string };

const serviceFields = {
  type: z.enum(['web', 'worker']),
  /** Public domain routed through proxy-manager (web only). */
  domain: domainSchema.optional(),
  health_path: healthPath.default('/health'),
  health_timeout_s: z.number().positive().max(3600).optional(),
  /** Overrides the image's command; a string runs through /bin/sh -c. */
  command: z.union([z.string().min(1).max(4096), z.array(z.string().max(4096)).min(1).max(64)]).optional(),
  image_base: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._/-]{0,127}$/, 'must be a repository name')
    .optional(),
  env: envVars.default({}),
  replicas: z.number().int().min(1).max(20).default(1),
  /** Switch the route back when the new version fails its post-switch check. */
  auto_rollback: z.boolean().default(false),
  /** Serve the domain over HTTPS: proxy-manager gets a certificate (an uploaded one that covers it, or ACME) and redirects HTTP. */
  https: z.boolean().optional(),
  drain_s: z.number().min(0).max(600).optional(),
};
export const serviceInput = z.object({ name: nameSchema, ...serviceFields });
export const servicePatch = z.object(serviceFields).partial();
export type Service = z.infer<typeof serviceInput> & { project: string; created_at: string; updated_at: string };

export const environmentInput = z.object({ name: nameSchema, env: envVars.default({}), auto_rollback: z.boolean().optional() });
export const environmentPatch = environmentInput.omit({ name: true }).partial();
export type Environment = z.infer<typeof environmentInput> & { project: string; created_at: string; updated_at: string };

const dockerHost = z
  .string()
  .regex(
    /^(local|unix:\/\/\/\S+|tcp:\/\/[A-Za-z0-9.-]+:\d{1,5}|ssh:\/\/[A-Za-z0-9._-]+@[A-Za-z0-9.-]+(:\d{1,5})?)$/,
    'must be local, unix:///path, tcp://host:port or ssh://user@host[:port]',
  );
export const serverInput = z
  .object({
    id: nameSchema,
    docker_host: dockerHost.optional(),
    /** Address the proxy reaches this server's containers at. */
    address: z
      .string()
      .regex(/^[A-Za-z0-9.:-]{1,253}$/)
      .optional(),
    /** A multi-cloud-manager instance to take the address from (docker over ssh://root@address). */
    instance_id: z.string().min(1).max(128).optional(),
    tls: z
      .object({ ca: z.string().min(1).max(20_000), cert: z.string().min(1).max(20_000), key: z.string().min(1).max(20_000) })
      .optional(),
    ssh_user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
      .optional(),
  })
  .refine((s) => s.docker_host || s.instance_id, { message: 'give docker_host or instance_id', path: ['docker_host'] });
export interface Server {
  id: string;
  docker_host: string;
  address: string;
  instance_id?: string;
  /** Sealed TLS material; never returned. */
  tls_sealed?: import('./secrets-crypto.js').SealedSecret;
  /** Drained: no new replicas are placed here (its old ones were moved off). */
  draining?: boolean;
  created_at: string;
}

export const placementInput = z.object({
  servers: z
    .array(z.object({ server_id: nameSchema, replicas: z.number().int().min(1).max(20) }))
    .min(1)
    .max(20),
});
export type Placement = z.infer<typeof placementInput> & { project: string; service: string; environment: string; updated_at: string };

export const gitSource = z
  .object({
    /** http(s) URLs may carry user:token (sealed at once, never stored or shown); ssh URLs take a deploy_key. */
    url: z.string().regex(/^(https?:\/\/|ssh:\/\/|git:\/\/|file:\/\/)[^\s]+$|^[\w.-]+@[\w.-]+:[^\s]+$/, 'must be a git URL'),
    ref: z
      .string()
      .regex(/^[A-Za-z0-9._/-]{1,200}$/)
      .refine((r) => !r.startsWith('-') && !r.includes('..'), 'must be a branch, tag or commit')
      .default('HEAD'),
    /** Sub-directory holding the Dockerfile or project. */
    path: z
      .string()
      .regex(/^[A-Za-z0-9._/-]{1,200}$/)
      .refine((p) => !p.split('/').includes('..') && !p.startsWith('/'), 'must stay inside the repository')
      .optional(),
    /** A private key (PEM or OpenSSH) for an ssh URL: sealed at once, on disk (0600) only during the clone. */
    deploy_key: z
      .string()
      .max(16_384)
      .regex(
        /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=:\r\n -]+-----END [A-Z0-9 ]*PRIVATE KEY-----\s*$/,
        'must be a private key in PEM or OpenSSH format',
      )
      .optional(),
    /** known_hosts lines for the ssh host; without them the host key is accepted on first use (per clone). */
    known_hosts: z
      .string()
      .max(65_536)
      .regex(/^[A-Za-z0-9+/=@*?.,:[\]|# \r\n_-]+$/, 'must be known_hosts lines')
      .optional(),
  })
  .superRefine((g, ctx) => {
    const problem = urlCredentialProblem(g.url);
    if (problem) ctx.addIssue({ code: 'custom', path: ['url'], message: problem });
    if ((g.deploy_key || g.known_hosts) && !isSshUrl(g.url))
      ctx.addIssue({ code: 'custom', path: ['deploy_key'], message: 'a deploy key (and known_hosts) goes with an ssh URL' });
  });
export const sourceInput = z.union([z.object({ image: imageRef }).strict(), z.object({ git: gitSource }).strict()]);
export type SourceInput = z.infer<typeof sourceInput>;

/** A saved source: a git URL clean of credentials, which are sealed beside it. */
export type StoredSourceInput = { image: string } | { git: { url: string; ref: string; path?: string; credentials?: GitCredentials } };

export type DeploymentSource =
  | { kind: 'image'; image: string }
  | {
      kind: 'git';
      /** Clean of credentials once the deploy is accepted (they are in `credentials`, sealed). */
      url: string;
      ref: string;
      path?: string;
      credentials?: GitCredentials;
      /** Plain text only between the request and its acceptance, never stored. */
      deploy_key?: string;
      known_hosts?: string;
    }
  | { kind: 'upload'; filename: string; bytes: number; sha256: string };

export const deployOptions = {
  /** false: refuse with 409 when another deploy of this service is running or queued. */
  queue: z.boolean().default(true),
  auto_rollback: z.boolean().optional(),
};
export const deployRequest = z.object({
  project: nameSchema,
  service: nameSchema,
  environment: nameSchema,
  source: sourceInput,
  ...deployOptions,
});
export type DeployRequest = z.infer<typeof deployRequest>;

export const deployConfigInput = z.object({
  name: nameSchema,
  project: nameSchema,
  service: nameSchema,
  environment: nameSchema,
  source: sourceInput,
  auto_rollback: z.boolean().optional(),
});
export type DeployConfig = Omit<z.infer<typeof deployConfigInput>, 'source'> & {
  source: StoredSourceInput;
  created_at: string;
  updated_at: string;
};

export const DEPLOYMENT_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'interrupted', 'rolled_back'] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];
export const FINAL_STATUSES: ReadonlySet<DeploymentStatus> = new Set(['succeeded', 'failed', 'interrupted', 'rolled_back']);

export interface StepRecord {
  name: string;
  status: 'running' | 'succeeded' | 'failed' | 'skipped';
  started_at: string;
  finished_at?: string;
  duration_ms?: number;
  detail?: string;
}

export interface PlacedContainer {
  server_id: string;
  container_id: string;
  name: string;
  port?: number;
  replica: number;
  address: string;
}

export interface ProgressEvent {
  seq: number;
  deployment_id: string;
  type: 'step' | 'log' | 'status';
  time: string;
  percent: number;
  step?: string;
  step_status?: StepRecord['status'];
  message?: string;
  status?: DeploymentStatus;
}

export interface Deployment {
  id: string;
  target_id: string;
  project: string;
  service: string;
  environment: string;
  service_type: 'web' | 'worker';
  source: DeploymentSource;
  status: DeploymentStatus;
  percent: number;
  step?: string;
  steps: StepRecord[];
  image?: string;
  image_id?: string;
  digest?: string;
  slot?: 'blue' | 'green';
  containers: PlacedContainer[];
  /** proxy-manager confirmed the route points at this deployment's containers. */
  route_switched: boolean;
  /**
   * Set (and saved) before the route request goes out: from then on the route may point at
   * this deployment's containers, whatever `route_switched` says, until it is settled.
   */
  route_switch_requested_at?: string;
  previous_deployment_id?: string;
  rollback_of?: string;
  promoted_from?: string;
  auto_rollback: boolean;
  reason?: string;
  last_log_lines?: string[];
  requested_by: string;
  owner: string;
  created_at: string;
  started_at?: string;
  finished_at?: string;
  events: ProgressEvent[];
}

/** What runs now for one project/service/environment. */
export interface Release {
  target_id: string;
  project: string;
  service: string;
  environment: string;
  deployment_id: string;
  image: string;
  slot: 'blue' | 'green';
  containers: PlacedContainer[];
  updated_at: string;
}
