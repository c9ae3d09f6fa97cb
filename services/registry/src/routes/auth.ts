import { z } from 'zod';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { Forbidden, RateLimited, Unauthorized, type Api, type DropletContext } from '@droplet-mesh/udc-kit';
import { identifyCaller, isAdmin, type CallerDeps } from '../caller.js';
import type { Keyring } from '../keyring.js';
import type { RegistryConfig } from '../config.js';

export interface AuthRouteDeps extends CallerDeps {
  keyring: Keyring;
  ctx: DropletContext<RegistryConfig>;
}

const DROPLET_SCOPES = ['read', 'write'];
const OPERATOR_SCOPES = ['read', 'write', 'admin'];

export function registerAuthRoutes(api: Api, deps: AuthRouteDeps): void {
  const { keyring, ctx } = deps;
  const requests = new RateLimiterMemory({ points: ctx.config.AUTH_RATE_LIMIT_PER_MIN, duration: 60 });
  const failures = new RateLimiterMemory({ points: ctx.config.AUTH_FAILURE_LIMIT_PER_MIN, duration: 60 });

  const limited = (res: unknown): never => {
    const ms = res instanceof RateLimiterRes ? res.msBeforeNext : 60_000;
    throw new RateLimited('too many token requests from this address; retry later', ms / 1000);
  };

  api.post(
    '/auth/token',
    {
      scope: 'public',
      summary: 'Mint an RS256 token (X-Registry-Key: the droplet key, or the admin key for any id)',
      query: z.object({
        droplet_id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a droplet id'),
        /** Ask for fewer scopes than the key allows (least privilege), e.g. `scopes=read`. */
        scopes: z
          .string()
          .regex(/^(read|write|admin)(,(read|write|admin))*$/, 'must be a comma list of read, write, admin')
          .transform((v) => [...new Set(v.split(','))])
          .optional(),
      }),
    },
    async ({ query, req }) => {
      const ip = req.ip ?? 'unknown';
      const blocked = await failures.get(ip);
      if (blocked && blocked.remainingPoints <= 0) limited(blocked);
      await requests.consume(ip).catch(limited);
      if (req.header('x-registry-key') === undefined) throw new Unauthorized('X-Registry-Key is required');
      let caller: Awaited<ReturnType<typeof identifyCaller>>;
      try {
        caller = await identifyCaller(req, deps, query.droplet_id);
      } catch (err) {
        await failures.consume(ip).catch(() => undefined);
        req.log.warn({ droplet_id: query.droplet_id, action: 'token', result: 'refused' }, 'token refused');
        throw err;
      }
      const allowed = isAdmin(caller) && query.droplet_id === 'operator' ? OPERATOR_SCOPES : DROPLET_SCOPES;
      const beyond = query.scopes?.filter((s) => !allowed.includes(s)) ?? [];
      if (beyond.length) throw new Forbidden(`this key cannot grant ${beyond.join(', ')}`, { allowed });
      const scopes = query.scopes ? allowed.filter((s) => query.scopes!.includes(s)) : allowed;
      const t = keyring.sign(
        { sub: query.droplet_id, droplet_id: query.droplet_id, scopes },
        ctx.config.JWT_ISSUER,
        ctx.config.JWT_AUDIENCE,
      );
      req.log.info({ droplet_id: query.droplet_id, kid: t.kid, action: 'token', result: 'issued' }, 'token issued');
      return { token: t.token, token_type: 'Bearer', expires_at: t.expires_at, scopes };
    },
  );

  api.get('/.well-known/jwks.json', { scope: 'public', summary: 'Public keys that verify registry tokens' }, ({ res }) => {
    res.setHeader('Cache-Control', 'public, max-age=60');
    return keyring.jwks();
  });

  api.post(
    '/keys/rotate',
    { scope: 'public', summary: 'New signing key (admin); old keys stay published until their tokens expire' },
    async ({ req }) => {
      const caller = await identifyCaller(req, deps);
      if (!isAdmin(caller)) throw new Forbidden('rotating keys needs the admin key or an admin token');
      const r = await keyring.rotate();
      ctx.emit('keys.rotated', { kid: r.kid, previous: r.previous });
      ctx.recordProof('keys.rotated', { kid: r.kid });
      return r;
    },
  );
}
