import {
  startNatsServer,
  startTestAuthority,
  udcConformanceSuite,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createConsoleDroplet } from '../src/app.js';
import { quiet, SESSION_SECRET, WEB_DIR } from './support/mesh.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let made: ReturnType<typeof createConsoleDroplet>;

udcConformanceSuite(
  'console droplet',
  async () => {
    nats = await startNatsServer();
    authority = await startTestAuthority();
    made = createConsoleDroplet({
      env: {
        PORT: '0',
        NATS_URL: nats.url,
        LOG_LEVEL: 'info',
        CONSOLE_WEB_DIR: WEB_DIR,
        CONSOLE_SESSION_SECRET: SESSION_SECRET,
        ...authority.env(),
      },
      registry: false,
      logDestination: quiet(),
    });
    await made.droplet.start();
    return {
      app: made.droplet.app,
      routes: made.droplet.api.routes,
      dropletName: 'console',
      token: (scopes) => authority.mint({ scopes }),
    };
  },
  async () => {
    await made.droplet.stop();
    await authority.close();
    await nats.stop({ removeStore: true });
  },
);
