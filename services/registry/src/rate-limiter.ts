// rate-limiter-flexible's in-memory limiter from its own files: the package's index also loads
// every other backend (Redis, Mongo, SQL, etcd, …), ~7 MB of a droplet's idle RSS (issue 16).
// test/idle-modules.test.ts checks that nothing imports the index and what these files load.
import { createRequire } from 'node:module';
import type * as Flexible from 'rate-limiter-flexible';

const require = createRequire(import.meta.url);

export const RateLimiterMemory = require('rate-limiter-flexible/lib/RateLimiterMemory.js') as typeof Flexible.RateLimiterMemory;
export type RateLimiterMemory = Flexible.RateLimiterMemory;
export const RateLimiterRes = require('rate-limiter-flexible/lib/RateLimiterRes.js') as typeof Flexible.RateLimiterRes;
export type RateLimiterRes = Flexible.RateLimiterRes;
