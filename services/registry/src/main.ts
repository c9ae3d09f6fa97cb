import { configOrExit, environmentWithFile } from '@droplet-mesh/udc-kit';
import { createRegistryDroplet } from './app.js';
import { registryConfigSchema } from './config.js';

// One clear line per bad variable, before anything connects.
// The env file (ENV_FILE, default <DATA_DIR>/registry.env) over the environment, as /reload-config reads it.
const env = environmentWithFile('registry', process.env);
configOrExit(registryConfigSchema, env);
const { droplet } = await createRegistryDroplet({ env });
droplet.installSignalHandlers();
await droplet.start();
