import { afterAll, beforeAll } from '@jest/globals';
import {
  startNatsServer,
  startTestAuthority,
  udcConformanceSuite,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createExampleDroplet } from '../src/example-droplet.js';
import { Writable } from 'node:stream';

let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: ReturnType<typeof createExampleDroplet>;
const quiet = new Writable({ write: (_c, _e, cb) => cb() });

udcConformanceSuite(
  'example droplet',
  async () => {
    nats = await startNatsServer();
    authority = await startTestAuthority();
    droplet = createExampleDroplet({
      env: { PORT: '0', NATS_URL: nats.url, LOG_LEVEL: 'info', ...authority.env() },
      logDestination: quiet,
    });
    await droplet.start();
    return { app: droplet.app, routes: droplet.api.routes, dropletName: 'example', token: (scopes) => authority.mint({ scopes }) };
  },
  async () => {
    await droplet.stop();
    await authority.close();
    await nats.stop({ removeStore: true });
  },
);
