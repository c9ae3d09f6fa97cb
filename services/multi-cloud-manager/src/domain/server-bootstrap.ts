// The cloud-init `user_data` that turns a fresh Debian/Ubuntu instance into a mesh server:
// Docker installed, its Engine API on one TCP port with mutual TLS only (the server's own
// certificate from the mesh CA, which the deployer holds sealed; only clients of that CA get
// in), that port and the app ports opened only to the mesh's addresses, the cloud metadata
// address closed to containers (the user_data holds the server's key), and a one-time token
// to report back once the engine answers. Validated with Debian's `cloud-init schema`.
import { isIP } from 'node:net';

export interface ServerBootstrap {
  /** The server id the deployer will register (also the certificate's common name). */
  serverId: string;
  /** PEM: the mesh CA (the engine's --tlscacert: whom it lets in). */
  caCert: string;
  /** PEM: this server's certificate (SANs: its addresses) and key, issued by the mesh CA. */
  serverCert: string;
  serverKey: string;
  /** Engine API port (default 2376). */
  enginePort?: number;
  /** Published app ports (the deployer's DEPLOY_PORT_RANGE), opened to the mesh only. */
  appPorts?: [number, number];
  /** Addresses or CIDRs of the mesh (deployer, proxy, health-monitor) allowed to reach those ports. */
  allowFrom: string[];
  /** Where the server reports back (POST, JSON), and the one-time token it proves itself with. */
  callbackUrl: string;
  callbackToken: string;
  /**
   * The mesh image registry (host:port as the server reaches it) and the CA its TLS
   * certificate is from: written to the engine's certs.d so the server pulls deploy images.
   */
  registry?: { host: string; ca: string };
}

export const DEFAULT_ENGINE_PORT = 2376;
/** Providers take 32 KiB (Hetzner) to 64 KiB: stay under the smallest. */
export const USER_DATA_MAX_BYTES = 32 * 1024;
const MESH_DIR = '/etc/droplet-mesh';
const TLS_DIR = `${MESH_DIR}/tls`;

const PEM = (label: string) => new RegExp(`^-----BEGIN ${label}-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END ${label}-----\\s*$`);

function cidr(v: string): boolean {
  const [addr, bits, ...rest] = v.split('/');
  if (rest.length > 0) return false;
  const fam = isIP(addr);
  if (fam === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d{1,3}$/.test(bits) && n >= 0 && n <= (fam === 4 ? 32 : 128);
}

/** Refuses anything that could break out of the YAML or the shell it ends up in. */
export function validateBootstrap(b: ServerBootstrap): string[] {
  const problems: string[] = [];
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(b.serverId)) problems.push('serverId must be a lowercase name (a-z, 0-9, -)');
  if (!PEM('CERTIFICATE').test(b.caCert)) problems.push('caCert must be one PEM certificate');
  if (!PEM('CERTIFICATE').test(b.serverCert)) problems.push('serverCert must be one PEM certificate');
  if (!PEM('(EC |RSA )?PRIVATE KEY').test(b.serverKey)) problems.push('serverKey must be one PEM private key');
  const port = b.enginePort ?? DEFAULT_ENGINE_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push('enginePort must be a TCP port');
  if (b.appPorts) {
    const [lo, hi] = b.appPorts;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1024 || hi > 65535 || lo > hi)
      problems.push('appPorts must be a range within 1024-65535');
  }
  if (b.allowFrom.length === 0) problems.push('allowFrom must name at least one mesh address');
  for (const a of b.allowFrom) if (!cidr(a)) problems.push(`allowFrom: '${a}' is not an IP address or CIDR`);
  let url: URL | undefined;
  try {
    url = new URL(b.callbackUrl);
  } catch {
    problems.push('callbackUrl must be a URL');
  }
  if (url && url.protocol !== 'https:' && url.protocol !== 'http:') problems.push('callbackUrl must be http(s)');
  if (url && (url.username || url.password)) problems.push('callbackUrl must not carry credentials');
  if (url && /['"\\\s$`]/.test(b.callbackUrl)) problems.push('callbackUrl must not contain quotes, spaces, $ or backslashes');
  if (!/^[A-Za-z0-9_-]{32,128}$/.test(b.callbackToken)) problems.push('callbackToken must be 32-128 of A-Z a-z 0-9 _ -');
  if (b.registry) {
    // certs.d/<host:port>/: a path, so no '/', no '..' and a port.
    if (!/^[A-Za-z0-9.-]{1,253}:\d{1,5}$|^\[[0-9A-Fa-f:]{2,45}\]:\d{1,5}$/.test(b.registry.host) || b.registry.host.includes('..'))
      problems.push('registry.host must be host:port');
    if (!PEM('CERTIFICATE').test(b.registry.ca)) problems.push('registry.ca must be one PEM certificate');
  }
  return problems;
}

// A small YAML writer: block literals for multi-line text, JSON-quoted scalars otherwise
// (a JSON string is a valid YAML double-quoted scalar), so no value can change the structure.
type Yaml = string | number | boolean | Yaml[] | { [k: string]: Yaml };

function scalar(v: string | number | boolean): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function block(text: string, indent: string): string {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  return `|${text.endsWith('\n') ? '' : '-'}\n${body
    .split('\n')
    .map((l) => (l ? indent + l : ''))
    .join('\n')}`;
}

function emit(v: Yaml, indent: string): string {
  if (Array.isArray(v)) {
    if (v.length === 0) return ' []';
    return `\n${v
      .map((item) => {
        if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
          const lines = emitMap(item, `${indent}  `).replace(/^\s+/, '');
          return `${indent}- ${lines}`;
        }
        if (Array.isArray(item)) return `${indent}- [${item.map((x) => scalar(x as string)).join(', ')}]`;
        return `${indent}- ${typeof item === 'string' && item.includes('\n') ? block(item, `${indent}  `) : scalar(item)}`;
      })
      .join('\n')}`;
  }
  if (typeof v === 'object') return `\n${emitMap(v, `${indent}  `)}`;
  if (typeof v === 'string' && v.includes('\n')) return ` ${block(v, `${indent}  `)}`;
  return ` ${scalar(v)}`;
}

function emitMap(m: { [k: string]: Yaml }, indent: string): string {
  return Object.entries(m)
    .map(([k, v]) => `${indent}${k}:${emit(v, indent)}`)
    .join('\n');
}

/** The nftables rules: engine and app ports only from the mesh; containers never reach the metadata service. */
function firewall(b: ServerBootstrap): string {
  const port = b.enginePort ?? DEFAULT_ENGINE_PORT;
  const v4 = b.allowFrom.filter((a) => isIP(a.split('/')[0]) === 4);
  const v6 = b.allowFrom.filter((a) => isIP(a.split('/')[0]) === 6);
  const ports = b.appPorts ? `{ ${port}, ${b.appPorts[0]}-${b.appPorts[1]} }` : `${port}`;
  return [
    'table inet droplet_mesh',
    'delete table inet droplet_mesh',
    'table inet droplet_mesh {',
    '  chain input {',
    '    type filter hook input priority -10; policy accept;',
    '    iif "lo" accept',
    ...(v4.length ? [`    ip saddr { ${v4.join(', ')} } tcp dport ${ports} accept`] : []),
    ...(v6.length ? [`    ip6 saddr { ${v6.join(', ')} } tcp dport ${ports} accept`] : []),
    `    tcp dport ${ports} drop`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority -10; policy accept;',
    '    ip daddr 169.254.169.254 drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Runs once the engine answers: reports to the mesh with the one-time token, then forgets the token. */
function reportScript(b: ServerBootstrap): string {
  const port = b.enginePort ?? DEFAULT_ENGINE_PORT;
  return `#!/bin/sh
# Droplet Mesh: report this server ready, once, with its one-time token.
set -eu
DIR=\${DROPLET_MESH_DIR:-${MESH_DIR}}
TOKEN_FILE="$DIR/callback-token"
[ -s "$TOKEN_FILE" ] || exit 0
i=0
until docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && timeout 2 bash -c '</dev/tcp/127.0.0.1/${port}' 2>/dev/null; do
  i=$((i + 1)); [ "$i" -lt "\${DROPLET_MESH_WAIT_TRIES:-120}" ] || { echo "droplet-mesh: the Docker Engine did not start" >&2; exit 1; }
  sleep 2
done
VERSION=$(docker version --format '{{.Server.Version}}')
FINGERPRINT=$(openssl x509 -in "$DIR/tls/server-cert.pem" -noout -fingerprint -sha256 | cut -d= -f2)
BODY=$(printf '{"server_id":"%s","engine_port":%s,"docker_version":"%s","certificate_sha256":"%s"}' '${b.serverId}' '${port}' "$VERSION" "$FINGERPRINT")
curl -fsS --retry 30 --retry-delay 10 --retry-all-errors --max-time 20 \\
  -H "Authorization: Bearer $(cat "$TOKEN_FILE")" -H 'Content-Type: application/json' \\
  --data "$BODY" '${b.callbackUrl}'
rm -f "$TOKEN_FILE"
`;
}

/** The `#cloud-config` user_data for one server; throws on invalid input. */
export function renderUserData(b: ServerBootstrap): string {
  const problems = validateBootstrap(b);
  if (problems.length > 0) throw new Error(`invalid server bootstrap: ${problems.join('; ')}`);
  const port = b.enginePort ?? DEFAULT_ENGINE_PORT;
  const file = (path: string, content: string, permissions: string): Yaml => ({ path, owner: 'root:root', permissions, content });
  const daemon = {
    tls: true,
    tlsverify: true,
    tlscacert: `${TLS_DIR}/ca.pem`,
    tlscert: `${TLS_DIR}/server-cert.pem`,
    tlskey: `${TLS_DIR}/server-key.pem`,
    'log-driver': 'json-file',
    'log-opts': { 'max-size': '10m', 'max-file': '3' },
  };
  const config: { [k: string]: Yaml } = {
    package_update: true,
    packages: ['docker.io', 'nftables', 'curl', 'openssl'],
    // Written before the packages install: the engine's first start already has TLS and the TCP listener.
    write_files: [
      file(`${TLS_DIR}/ca.pem`, b.caCert, '0644'),
      file(`${TLS_DIR}/server-cert.pem`, b.serverCert, '0644'),
      file(`${TLS_DIR}/server-key.pem`, b.serverKey, '0600'),
      file('/etc/docker/daemon.json', `${JSON.stringify(daemon, null, 2)}\n`, '0644'),
      file(
        '/etc/systemd/system/docker.service.d/droplet-mesh.conf',
        [
          '[Unit]',
          'After=droplet-mesh-firewall.service',
          'Wants=droplet-mesh-firewall.service',
          '[Service]',
          'ExecStart=',
          `ExecStart=/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:${port} --containerd=/run/containerd/containerd.sock`,
          '',
        ].join('\n'),
        '0644',
      ),
      file(`${MESH_DIR}/firewall.nft`, firewall(b), '0644'),
      file(
        '/etc/systemd/system/droplet-mesh-firewall.service',
        [
          '[Unit]',
          'Description=Droplet Mesh: Docker Engine API and app ports only from the mesh',
          'Before=docker.service',
          '[Service]',
          'Type=oneshot',
          'RemainAfterExit=yes',
          `ExecStart=/usr/sbin/nft -f ${MESH_DIR}/firewall.nft`,
          '[Install]',
          'WantedBy=multi-user.target',
          '',
        ].join('\n'),
        '0644',
      ),
      file(`${MESH_DIR}/server-id`, `${b.serverId}\n`, '0644'),
      file(`${MESH_DIR}/callback-token`, `${b.callbackToken}\n`, '0600'),
      file('/usr/local/sbin/droplet-mesh-report', reportScript(b), '0700'),
      // The mesh image registry's CA for that registry only (read by the engine at each pull).
      ...(b.registry ? [file(`/etc/docker/certs.d/${b.registry.host}/ca.crt`, b.registry.ca, '0644')] : []),
    ],
    runcmd: [
      ['systemctl', 'daemon-reload'],
      ['systemctl', 'enable', '--now', 'droplet-mesh-firewall.service'],
      ['systemctl', 'enable', 'docker.service'],
      ['systemctl', 'restart', 'docker.service'],
      ['/usr/local/sbin/droplet-mesh-report'],
    ],
  };
  const text = `#cloud-config\n${emitMap(config, '')}\n`;
  if (Buffer.byteLength(text) > USER_DATA_MAX_BYTES)
    throw new Error(`user_data is ${Buffer.byteLength(text)} bytes, over the ${USER_DATA_MAX_BYTES} providers accept`);
  return text;
}

/** What the deployer's `POST /servers/provision` answers (the parts the user_data needs). */
export interface DeployerProvision {
  server_id: string;
  engine_port: number;
  ca: string;
  cert: string;
  key: string;
  callback_token: string;
  /** `/servers/provision/<id>/ready` on the deployer. */
  callback_path: string;
}

/**
 * The bootstrap of a server the deployer is provisioning: its certificate and one-time
 * token, the deployer's public base URL for the ready report, and the mesh's addresses.
 */
export function bootstrapFromProvision(
  p: DeployerProvision,
  mesh: { deployerUrl: string; allowFrom: string[]; appPorts?: [number, number]; registry?: { host: string; ca: string } },
): ServerBootstrap {
  return {
    serverId: p.server_id,
    caCert: p.ca,
    serverCert: p.cert,
    serverKey: p.key,
    enginePort: p.engine_port,
    allowFrom: mesh.allowFrom,
    ...(mesh.appPorts ? { appPorts: mesh.appPorts } : {}),
    callbackUrl: new URL(p.callback_path, mesh.deployerUrl).toString(),
    callbackToken: p.callback_token,
    ...(mesh.registry ? { registry: mesh.registry } : {}),
  };
}
