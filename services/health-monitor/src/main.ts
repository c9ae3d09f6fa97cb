import { configOrExit, environmentWithFile } from '@droplet-mesh/udc-kit';
import { configSchema } from './config.js';
import { createHealthMonitor } from './health-monitor.js';

// The env file (ENV_FILE, default <DATA_DIR>/health-monitor.env) over the environment, as /reload-config reads it.
const env = environmentWithFile('health-monitor', process.env);
configOrExit(configSchema, env);
const monitor = createHealthMonitor({ env });
monitor.droplet.installSignalHandlers();
await monitor.start();
