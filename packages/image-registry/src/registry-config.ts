/** What the registry's config.yml says; every path is absolute. */
export interface RegistryConfigInput {
  /** host:port the registry listens on (one address: loopback, or an address only the engines reach). */
  listen: string;
  storageDir: string;
  certFile: string;
  keyFile: string;
  htpasswdFile: string;
  /** Signs the registry's upload state; random per install. */
  httpSecret: string;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

const q = (s: string) => JSON.stringify(s); // a YAML double-quoted scalar is a JSON string

/**
 * Distribution 2.8's configuration: filesystem storage, TLS, htpasswd (bcrypt) basic auth,
 * deletes allowed (garbage collection can then reclaim unused layers), no debug listener.
 */
export function renderRegistryConfig(c: RegistryConfigInput): string {
  return [
    'version: 0.1',
    'log:',
    `  level: ${c.logLevel ?? 'info'}`,
    '  accesslog:',
    '    disabled: false',
    '  fields:',
    '    service: mesh-image-registry',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${q(c.storageDir)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${q(c.listen)}`,
    `  secret: ${q(c.httpSecret)}`,
    '  tls:',
    `    certificate: ${q(c.certFile)}`,
    `    key: ${q(c.keyFile)}`,
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
    'auth:',
    '  htpasswd:',
    '    realm: droplet-mesh',
    `    path: ${q(c.htpasswdFile)}`,
    '',
  ].join('\n');
}
