import { Bus, configOrExit, environmentWithFile } from '@droplet-mesh/udc-kit';
import { createProxyManager, proxyManagerConfigSchema } from './app.js';

// The env file (ENV_FILE, default <DATA_DIR>/proxy-manager.env) over the environment, as /reload-config reads it.
const env = environmentWithFile('proxy-manager', process.env);
const config = configOrExit(proxyManagerConfigSchema, env);
const bus = await Bus.fromConfig(config, 'proxy-manager');
const manager = createProxyManager({ env, bus });
manager.droplet.installSignalHandlers();
await manager.start();
