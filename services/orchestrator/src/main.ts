import { configOrExit, environmentWithFile } from '@droplet-mesh/udc-kit';
import { createOrchestratorDroplet } from './app.js';
import { orchestratorConfigSchema } from './config.js';

// One clear line per bad variable, before anything connects.
// The env file (ENV_FILE, default <DATA_DIR>/orchestrator.env) over the environment, as /reload-config reads it.
const env = environmentWithFile('orchestrator', process.env);
configOrExit(orchestratorConfigSchema, env);
const { droplet } = await createOrchestratorDroplet({ env });
droplet.installSignalHandlers();
await droplet.start();
