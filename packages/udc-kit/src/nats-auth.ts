/**
 * The mesh's NATS authorization: one NATS user per droplet, each allowed only its own
 * subjects and KV buckets. One table, rendered into the nats-server configuration that
 * `npm start`, compose and the tests use, so that all three enforce the same thing.
 */

/** KV buckets (by their default names) each droplet owns: only the owner may write them. */
export const OWNED_BUCKETS: Record<string, readonly string[]> = {
  registry: ['registry', 'registry-keys', 'registry-revocations'],
  'multi-cloud-manager': ['mcm-idempotency'],
  'proxy-manager': ['routes', 'certificates', 'acme-budget'],
  deployer: ['deployer'],
  'health-monitor': [
    'health-monitor-members',
    'health-monitor-incidents',
    'health-monitor-leases',
    'health-monitor-targets',
    'health-monitor-settings',
  ],
  console: ['console-sessions'],
  orchestrator: ['orchestrator'],
};

/** Buckets every droplet may read (watch) but not write. */
export const SHARED_READ_BUCKETS: readonly string[] = ['registry-revocations'];

/** Core subjects a droplet listens to beyond its own, by droplet. */
const EXTRA_SUBSCRIBE: Record<string, readonly string[]> = {
  registry: ['registry.heartbeat.*'],
  // The registry's `droplet.deregistered` event (udc-kit publishes `<droplet>.<type>`).
  'health-monitor': ['registry.droplet.>'],
};

export const MESH_DROPLETS = Object.keys(OWNED_BUCKETS);

export interface NatsPermissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
  /** Lets a droplet answer requests (publish once to the request's reply subject). */
  allow_responses: boolean;
}

/** A droplet's private inbox prefix: replies to its requests cannot be read by others. */
export const inboxPrefixFor = (droplet: string) => `_INBOX_${droplet.replace(/[^A-Za-z0-9_-]/g, '_')}`;

const stream = (bucket: string) => `KV_${bucket}`;

function bucketRead(bucket: string): string[] {
  const s = stream(bucket);
  return [
    `$JS.API.STREAM.INFO.${s}`,
    `$JS.API.STREAM.MSG.GET.${s}`,
    `$JS.API.DIRECT.GET.${s}`,
    `$JS.API.DIRECT.GET.${s}.>`,
    `$JS.API.CONSUMER.CREATE.${s}`,
    `$JS.API.CONSUMER.CREATE.${s}.>`,
    `$JS.API.CONSUMER.DELETE.${s}.>`,
    `$JS.API.CONSUMER.INFO.${s}.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${s}.>`,
    `$JS.FC.${s}.>`,
    `$JS.ACK.${s}.>`,
  ];
}

function bucketWrite(bucket: string): string[] {
  const s = stream(bucket);
  return [`$KV.${bucket}.>`, `$JS.API.STREAM.CREATE.${s}`, `$JS.API.STREAM.UPDATE.${s}`, `$JS.API.STREAM.PURGE.${s}`];
}

/** What droplet `name` may publish and subscribe to. */
export function natsPermissions(name: string): NatsPermissions {
  const owned = OWNED_BUCKETS[name] ?? [];
  const read = [...new Set([...owned, ...SHARED_READ_BUCKETS])];
  const publish = [
    // Messages to any droplet; each message carries the sender's JWT, checked by the receiver.
    'udc.*.message',
    `udc.${name}.events.>`,
    // Its own namespace (events, progress, owner probes); the registry's includes heartbeats it relays.
    `${name}.>`,
    `registry.heartbeat.${name}`,
    '$JS.API.INFO',
    ...read.flatMap(bucketRead),
    ...owned.flatMap(bucketWrite),
  ];
  const subscribe = [`udc.${name}.message`, 'udc.*.events.>', `${name}.>`, `${inboxPrefixFor(name)}.>`, ...(EXTRA_SUBSCRIBE[name] ?? [])];
  return { publish: { allow: [...new Set(publish)] }, subscribe: { allow: [...new Set(subscribe)] }, allow_responses: true };
}

export interface NatsUser {
  user: string;
  /** A literal password, or a `$VARIABLE` the server reads from its environment. */
  password: string;
  permissions?: NatsPermissions;
}

const quote = (s: string) => JSON.stringify(s);

/** The `authorization { users: [...] }` block of a nats-server configuration. */
export function renderNatsAuthorization(users: NatsUser[]): string {
  const lines = ['authorization {', '  users: ['];
  for (const u of users) {
    const password = u.password.startsWith('$') ? u.password : quote(u.password);
    lines.push(`    {`, `      user: ${quote(u.user)}`, `      password: ${password}`);
    if (u.permissions) {
      const p = u.permissions;
      lines.push(
        '      permissions: {',
        `        publish: { allow: [${p.publish.allow.map(quote).join(', ')}] }`,
        `        subscribe: { allow: [${p.subscribe.allow.map(quote).join(', ')}] }`,
        `        allow_responses: ${p.allow_responses}`,
        '      }',
      );
    }
    lines.push('    }');
  }
  lines.push('  ]', '}');
  return `${lines.join('\n')}\n`;
}

/** Users for every mesh droplet with their permissions; `password(name)` gives each one's secret. */
export function meshNatsUsers(password: (droplet: string) => string): NatsUser[] {
  return MESH_DROPLETS.map((name) => ({ user: name, password: password(name), permissions: natsPermissions(name) }));
}

/** The environment variable holding a droplet's NATS password in compose (`NATS_PASSWORD_PROXY_MANAGER`). */
export const natsPasswordVariable = (droplet: string) => `NATS_PASSWORD_${droplet.toUpperCase().replace(/-/g, '_')}`;

/** deploy/nats/nats.conf, the compose NATS server's configuration (passwords from its environment). */
export function renderComposeNatsConfig(): string {
  return `# Generated by \`node scripts/render-nats-conf.mjs\` from packages/udc-kit/src/nats-auth.ts; a test
# checks that this file matches it. Edit the table there, not this file.
#
# NATS for the mesh: JetStream (KV buckets hold the mesh's desired state) and one user per
# droplet, each allowed only its own subjects and buckets. Each droplet's password comes
# from the container's environment (.env: ${natsPasswordVariable('<droplet>')}); use letters and
# digits, as the config parser reads the value as a token.
port: 4222
server_name: mesh-nats

# Monitoring only inside the container, for the healthcheck (/healthz).
http: 127.0.0.1:8222

jetstream {
  store_dir: /data
  max_memory_store: 256MB
  max_file_store: 10GB
}

${renderNatsAuthorization(meshNatsUsers((name) => `$${natsPasswordVariable(name)}`))}
max_payload: 8MB
`;
}
