import {
  startNatsServer,
  startTestAuthority,
  udcConformanceSuite,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createOrchestratorDroplet, type OrchestratorDroplet } from '../src/app.js';
import { quiet } from './support/mesh.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let made: OrchestratorDroplet;

udcConformanceSuite(
  'orchestrator droplet',
  async () => {
    nats = await startNatsServer();
    authority = await startTestAuthority();
    made = await createOrchestratorDroplet({
      env: { PORT: '0', NATS_URL: nats.url, LOG_LEVEL: 'info', ...authority.env() },
      logDestination: quiet(),
    });
    await made.droplet.start();
    return {
      app: made.droplet.app,
      routes: made.droplet.api.routes,
      dropletName: 'orchestrator',
      token: (scopes) => authority.mint({ scopes }),
    };
  },
  async () => {
    await made.droplet.stop();
    await authority.close();
    await nats.stop({ removeStore: true });
  },
);
