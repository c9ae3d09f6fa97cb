// The two parts of undici a check needs, without its package entry. The entry also loads
// fetch, WebSocket, EventSource, the cache and the mocks, which the monitor never uses:
// about 6.6 MB more idle RSS than these two files (bench/footprint, issue 16). The paths have
// not moved since undici 6. package.json pins the version, so an update that moves them
// fails in the tests, not in production.
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);

export const Agent: typeof Undici.Agent = require('undici/lib/dispatcher/agent.js');
export type Agent = Undici.Agent;
export const buildConnector: typeof Undici.buildConnector = require('undici/lib/core/connect.js');
export type Connector = Undici.buildConnector.connector;
export type { Dispatcher } from 'undici';
