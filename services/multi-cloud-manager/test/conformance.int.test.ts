import {
  startNatsServer,
  startTestAuthority,
  udcConformanceSuite,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createMultiCloudDroplet } from '../src/app.js';
import { quiet } from './helpers.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: ReturnType<typeof createMultiCloudDroplet>;

udcConformanceSuite(
  'multi-cloud-manager',
  async () => {
    nats = await startNatsServer();
    authority = await startTestAuthority();
    // No cloud token and no local engine: every provider is not_configured, which must still conform.
    droplet = createMultiCloudDroplet({
      env: { PORT: '0', NATS_URL: nats.url, LOCAL_PROVIDER_ENABLED: 'false', ...authority.env() },
      registry: false,
      logDestination: quiet(),
    });
    await droplet.start();
    return {
      app: droplet.app,
      routes: droplet.api.routes,
      dropletName: 'multi-cloud-manager',
      token: (scopes) => authority.mint({ scopes }),
    };
  },
  async () => {
    await droplet.stop();
    await authority.close();
    await nats.stop({ removeStore: true });
  },
);
