import { z } from 'zod';
import jwt from 'jsonwebtoken';
import { RateLimiterMemory, RateLimiterRes } from '../rate-limiter.js';
import {
  dropletIdSchema,
  Forbidden,
  InvalidRequest,
  RateLimited,
  Unauthorized,
  type Api,
  type DropletContext,
} from '@droplet-mesh/udc-kit';
import { identifyCaller, isAdmin, type CallerDeps } from '../caller.js';
import type { Keyring } from '../keyring.js';
import type { RegistryConfig } from '../config.js';
import type { Revoker } from '../revoker.js';

export interface AuthRouteDeps extends CallerDeps {
  keyring: Keyring;
  revoker: Revoker;
  ctx: DropletContext<RegistryConfig>;
}

const dropletId = dropletIdSchema;
const jtiSchema = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'must be a token id (jti)');
const revokeBody = z
  .object({
    /** One token, by its id. */
    jti: jtiSchema.optional(),
    /** One token, given whole (its jti is read from it). */
    token: z.string().max(8192).optional(),
    /** Every token issued to this droplet up to now. */
    droplet_id: dropletId.optional(),
  })
  .strict()
  .refine((b) => [b.jti, b.token, b.droplet_id].filter((v) => v !== undefined).length === 1, {
    message: 'give exactly one of jti, token, droplet_id',
    path: ['(root)'],
  });

const DROPLET_SCOPES = ['read', 'write'];
const OPERATOR_SCOPES = ['read', 'write', 'admin'];

export function registerAuthRoutes(api: Api, deps: AuthRouteDeps): void {
  const { keyring, revoker, ctx } = deps;
  const requests = new RateLimiterMemory({ points: ctx.config.AUTH_RATE_LIMIT_PER_MIN, duration: 60 });

  api.post(
    '/auth/token',
    {
      scope: 'public',
      summary: 'Mint an RS256 token (X-Registry-Key: the droplet key, or the admin key for any id)',
      query: z.object({
        droplet_id: dropletId,
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
      await deps.limiter.assertAllowed(req);
      await requests.consume(ip).catch((res: unknown) => {
        const ms = res instanceof RateLimiterRes ? res.msBeforeNext : 60_000;
        throw new RateLimited('too many token requests from this address; retry later', ms / 1000);
      });
      if (req.header('x-registry-key') === undefined) throw new Unauthorized('X-Registry-Key is required');
      // A wrong key counts as a failure for this address (in identifyCaller).
      const caller = await identifyCaller(req, deps, query.droplet_id);
      const allowed = isAdmin(caller) && query.droplet_id === 'operator' ? OPERATOR_SCOPES : DROPLET_SCOPES;
      const beyond = query.scopes?.filter((s) => !allowed.includes(s)) ?? [];
      if (beyond.length) throw new Forbidden(`this key cannot grant ${beyond.join(', ')}`, { allowed });
      const scopes = query.scopes ? allowed.filter((s) => query.scopes!.includes(s)) : allowed;
      const t = keyring.sign(
        { sub: query.droplet_id, droplet_id: query.droplet_id, scopes },
        ctx.config.JWT_ISSUER,
        ctx.config.JWT_AUDIENCE,
      );
      req.log.info({ droplet_id: query.droplet_id, kid: t.kid, jti: t.jti, action: 'token', result: 'issued' }, 'token issued');
      return { token: t.token, token_type: 'Bearer', expires_at: t.expires_at, scopes, jti: t.jti };
    },
  );

  api.post(
    '/auth/revoke',
    {
      scope: 'public',
      summary:
        'Revoke one token (jti, or the token itself) or every token issued to a droplet so far (admin); every droplet refuses it within 2 s',
      body: revokeBody,
    },
    async ({ body, req }) => {
      const caller = await identifyCaller(req, deps);
      if (!isAdmin(caller)) throw new Forbidden('revoking tokens needs the admin key or an admin token');
      let jti = body.jti;
      if (body.token !== undefined) {
        const claims = jwt.decode(body.token);
        if (!claims || typeof claims === 'string')
          throw new InvalidRequest('token is not a JWT', { fields: [{ path: 'token', message: 'must be a JWT' }] });
        const parsed = jtiSchema.safeParse(claims.jti);
        if (!parsed.success)
          throw new InvalidRequest('this token has no usable jti; revoke its droplet instead', {
            fields: [{ path: 'token', message: 'has no jti' }],
          });
        jti = parsed.data;
      }
      const revoked = jti !== undefined ? await revoker.revokeToken(jti) : await revoker.revokeDroplet(body.droplet_id!);
      req.log.info({ ...revoked, action: 'revoke', result: 'revoked' }, 'tokens revoked');
      ctx.emit('tokens.revoked', { revoked });
      ctx.recordProof('tokens.revoked', revoked);
      return { revoked };
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
