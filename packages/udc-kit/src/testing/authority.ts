import { generateKeyPairSync, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import jwt from 'jsonwebtoken';
import type { Scope } from '../auth.js';
import { freePort } from './ports.js';

export interface TestAuthority {
  issuer: string;
  audience: string;
  jwksUrl: string;
  kid: string;
  publicKeyPem: string;
  privateKeyPem: string;
  /** A signed RS256 token; override anything to build bad ones. */
  mint(opts?: {
    sub?: string;
    scopes?: Scope[];
    expiresInSeconds?: number;
    issuer?: string;
    audience?: string;
    kid?: string;
    privateKeyPem?: string;
    extra?: Record<string, unknown>;
  }): string;
  /** Environment for a droplet that should trust this authority. */
  env(): Record<string, string>;
  close(): Promise<void>;
}

function jwkOf(pub: KeyObject, kid: string) {
  return { ...pub.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
}

/** A key pair and a JWKS server on a free loopback port, standing in for the registry in unit tests. */
export async function startTestAuthority(opts: { issuer?: string; audience?: string } = {}): Promise<TestAuthority> {
  const issuer = opts.issuer ?? 'droplet-mesh-registry';
  const audience = opts.audience ?? 'droplet-mesh';
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const port = await freePort();
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/jwks.json') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwkOf(createPublicKey(publicKeyPem), kid)] }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  const jwksUrl = `http://127.0.0.1:${port}/.well-known/jwks.json`;
  return {
    issuer,
    audience,
    jwksUrl,
    kid,
    publicKeyPem,
    privateKeyPem,
    mint(o = {}) {
      const sub = o.sub ?? 'test-operator';
      return jwt.sign(
        { droplet_id: sub, scopes: o.scopes ?? ['read', 'write', 'admin'], ...(o.extra ?? {}) },
        o.privateKeyPem ?? privateKeyPem,
        {
          algorithm: 'RS256',
          keyid: o.kid ?? kid,
          subject: sub,
          issuer: o.issuer ?? issuer,
          audience: o.audience ?? audience,
          expiresIn: o.expiresInSeconds ?? 3600,
        },
      );
    },
    env() {
      return { JWKS_URL: jwksUrl, JWT_ISSUER: issuer, JWT_AUDIENCE: audience };
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
