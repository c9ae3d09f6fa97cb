import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startNatsServer,
  startTestAuthority,
  udcConformanceSuite,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createDeployerDroplet, type DeployerDroplet } from '../src/app.js';
import { masterKey, portRange, quiet } from './helpers.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: DeployerDroplet;
const dataDir = mkdtempSync(join(tmpdir(), 'deployer-conf-'));

udcConformanceSuite(
  'deployer',
  async () => {
    nats = await startNatsServer();
    authority = await startTestAuthority();
    droplet = await createDeployerDroplet({
      env: {
        PORT: '0',
        NATS_URL: nats.url,
        LOG_LEVEL: 'info',
        DEPLOYER_MASTER_KEY: masterKey(),
        DEPLOY_PORT_RANGE: portRange(),
        DATA_DIR: dataDir,
        ...authority.env(),
      },
      logDestination: quiet(),
    });
    await droplet.start();
    return { app: droplet.app, routes: droplet.api.routes, dropletName: 'deployer', token: (scopes) => authority.mint({ scopes }) };
  },
  async () => {
    await droplet.stop();
    await authority.close();
    await nats.stop({ removeStore: true });
    rmSync(dataDir, { recursive: true, force: true });
  },
);
