import { lookup } from 'node:dns/promises';
import { connect, createServer, isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import Docker from 'dockerode';
import type { Server } from '../domain/model.js';
import { openSecret } from '../domain/secrets-crypto.js';
import { DEFAULT_APP_NETWORK, DockerEngine, type ContainerEngine } from './container-engine.js';

export interface EngineHandle {
  engine: ContainerEngine;
  /** Bind test for ports on this server; only possible for an engine on this host. */
  isPortFree?: (port: number) => Promise<boolean>;
}

export function localPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

/** Nothing accepts a connection on host:port (refused); anything else (answer, timeout) counts as taken. */
export function nothingListens(port: number, host: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host, timeout: timeoutMs });
    const done = (free: boolean) => {
      s.destroy();
      resolve(free);
    };
    s.once('connect', () => done(false));
    s.once('timeout', () => done(false));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED'));
  });
}

/**
 * Port probe for an engine on this machine. A loopback address: a bind test. Another
 * address (the deployer in a container, apps on the host's network): a bind test here
 * and nobody answering at that address.
 */
export function hostPortFree(port: number, host: string): Promise<boolean> {
  if (isLoopback(host)) return localPortFree(port, host);
  return localPortFree(port).then((free) => free && nothingListens(port, host));
}

/**
 * The host address an app's port is published on: APP_BIND_ADDRESS when set, else the
 * address the mesh reaches the server at (proxy-manager and the health wait connect
 * there): 127.0.0.1 for the local server unless LOCAL_SERVER_ADDRESS says otherwise (in
 * compose host.docker.internal, the host's address on the Docker bridge), a remote
 * server's own address. Never every interface unless the operator says 0.0.0.0.
 */
export async function appBindAddress(setting: string | undefined, serverAddress: string): Promise<string> {
  if (setting) return setting;
  if (serverAddress === 'localhost') return '127.0.0.1';
  if (isIP(serverAddress)) return serverAddress;
  try {
    return (await lookup(serverAddress)).address;
  } catch (err) {
    throw new Error(
      `cannot publish app ports: the server address '${serverAddress}' does not resolve (${(err as Error).message}); set APP_BIND_ADDRESS`,
    );
  }
}

export interface AppNetworkSettings {
  /** The mesh's bridge network for apps (APP_NETWORK). */
  network: string;
  /** APP_BIND_ADDRESS: one address for every server's published ports (default: each server's address). */
  bindAddress?: string;
}

/** dockerode options from a server's docker_host: local socket, unix://, tcp:// (TLS when material is given), ssh://. */
export function dockerOptions(server: Server, masterKey: Buffer, defaultHost?: string): Docker.DockerOptions {
  const host = server.docker_host === 'local' ? defaultHost : server.docker_host;
  if (!host) return { socketPath: '/var/run/docker.sock' };
  const u = new URL(host);
  if (u.protocol === 'unix:') return { socketPath: u.pathname };
  if (u.protocol === 'ssh:')
    return {
      protocol: 'ssh',
      host: u.hostname,
      port: u.port || 22,
      username: decodeURIComponent(u.username),
      sshOptions: { agent: process.env.SSH_AUTH_SOCK },
    };
  if (u.protocol === 'tcp:') {
    // Never plain HTTP: an engine API without TLS gives root on that machine to whoever reaches it.
    if (!server.tls_sealed)
      throw new Error(`server '${server.id}' (${host}) has no TLS material: a tcp:// engine is used only over mutual TLS`);
    const { ca, cert, key, server_name } = JSON.parse(openSecret(masterKey, server.tls_sealed, `server/${server.id}/tls`)) as {
      ca: string;
      cert: string;
      key: string;
      /** Mesh servers: the identity name the engine's certificate must carry (engineIdentity(id)). */
      server_name?: string;
    };
    // Only `ca` is trusted (not the system store). The engine's certificate must name this
    // server's identity (mesh servers) or else the host it is reached at.
    return {
      protocol: 'https',
      host: u.hostname,
      port: u.port || 2376,
      ca,
      cert,
      key,
      ...(server_name ? { checkServerIdentity: (_host: string, peer: PeerCertificate) => checkServerIdentity(server_name, peer) } : {}),
    } as Docker.DockerOptions;
  }
  throw new Error(`unsupported docker_host ${u.protocol}`);
}

/** One engine client per server, built on first use. */
export class EnginePool {
  private engines = new Map<string, EngineHandle>();
  constructor(
    private masterKey: Buffer,
    private defaultHost?: string,
    private override?: (server: Server) => EngineHandle | undefined,
    private apps: AppNetworkSettings = { network: DEFAULT_APP_NETWORK },
  ) {}

  get(server: Server): EngineHandle {
    let h = this.engines.get(server.id);
    if (!h) {
      h = this.override?.(server) ?? this.build(server);
      this.engines.set(server.id, h);
    }
    return h;
  }

  forget(serverId: string): void {
    this.engines.delete(serverId);
  }

  private build(server: Server): EngineHandle {
    const opts = dockerOptions(server, this.masterKey, this.defaultHost);
    const onThisHost = !!opts.socketPath || opts.host === '127.0.0.1' || opts.host === 'localhost';
    const host = server.address === 'localhost' ? '127.0.0.1' : server.address;
    const net = { network: this.apps.network, bindAddress: () => appBindAddress(this.apps.bindAddress, host) };
    return { engine: new DockerEngine(new Docker(opts), net), isPortFree: onThisHost ? (p) => hostPortFree(p, host) : undefined };
  }
}
