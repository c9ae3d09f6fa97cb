import { configOrExit, environmentWithFile } from '@droplet-mesh/udc-kit';
import { createConsoleDroplet } from './app.js';
import { consoleConfigSchema } from './config.js';

// One clear line per bad variable, before anything connects.
// The env file (ENV_FILE, default <DATA_DIR>/console.env) over the environment, as /reload-config reads it.
const env = environmentWithFile('console', process.env);
configOrExit(consoleConfigSchema, env);
const { droplet } = createConsoleDroplet({ env });
droplet.installSignalHandlers();
await droplet.start();
