// First: dockerode's SSH transport and BuildKit session then load on first use (issue 16, idle RSS).
import './docker-extras-on-first-use.js';
import { configOrExit, environmentWithFile } from '@droplet-mesh/udc-kit';
import { createMultiCloudDroplet } from './app.js';
import { configSchema } from './config.js';

// Fail fast with one clear line per bad variable before anything starts.
// The env file (ENV_FILE, default <DATA_DIR>/multi-cloud-manager.env) over the environment, as /reload-config reads it.
const env = environmentWithFile('multi-cloud-manager', process.env);
configOrExit(configSchema, env);
const droplet = createMultiCloudDroplet({ env });
droplet.installSignalHandlers();
await droplet.start();
