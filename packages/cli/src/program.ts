import { Command, CommanderError } from 'commander';
import { Context } from './context.js';
import { errorJson, formatError } from './output.js';
import type { CommandEnv } from './commands/command-env.js';
import { registerBackupCommands } from './commands/backup.js';
import { registerProjectCommands } from './commands/projects.js';
import { registerEnvironmentCommands } from './commands/environments.js';
import { registerServiceCommands } from './commands/services.js';
import { registerSecretCommands } from './commands/secrets.js';
import { registerRegistryCommands } from './commands/registries.js';
import { registerPlacementCommands } from './commands/placements.js';
import { registerCertificateCommands } from './commands/certificates.js';
import { registerSnapshotCommands } from './commands/snapshots.js';
import { registerConfigCommands } from './commands/config.js';
import { registerHealthCommand } from './commands/health.js';
import { registerCompletionCommand } from './commands/completion.js';
import { registerDeployCommands } from './commands/deploy.js';
import { registerIncidentCommands } from './commands/incidents.js';
import { registerInstanceCommands } from './commands/instances.js';
import { registerLoginCommands } from './commands/login.js';
import { registerLogsCommand } from './commands/logs.js';
import { registerRouteCommands } from './commands/routes.js';
import { registerServerProvisionCommands } from './commands/servers-provision.js';
import { registerStackCommands } from './commands/stack.js';
import { registerStatusCommand } from './commands/status.js';
import { registerUndeployCommand } from './commands/undeploy.js';

export const VERSION = '0.1.0';

/** The whole command tree; `context(cmd)` gives each action its Context. */
export function buildProgram(env: CommandEnv): Command {
  const program = new Command('meshctl')
    .description('Operate a Droplet Mesh over its HTTP APIs')
    .version(VERSION)
    .option('--json', 'print the raw JSON (for scripts)')
    .showSuggestionAfterError()
    .exitOverride();
  registerLoginCommands(program, env);
  registerStatusCommand(program, env);
  registerInstanceCommands(program, env);
  registerRouteCommands(program, env);
  registerDeployCommands(program, env);
  registerUndeployCommand(program, env);
  registerServerProvisionCommands(program, env);
  registerIncidentCommands(program, env);
  registerLogsCommand(program, env);
  registerCompletionCommand(program, env);
  registerHealthCommand(program, env);
  registerProjectCommands(program, env);
  registerEnvironmentCommands(program, env);
  registerServiceCommands(program, env);
  registerSecretCommands(program, env);
  registerRegistryCommands(program, env);
  registerPlacementCommands(program, env);
  registerCertificateCommands(program, env);
  registerSnapshotCommands(program, env);
  registerConfigCommands(program, env);
  registerBackupCommands(program, env);
  registerStackCommands(program, env);
  // Subcommands inherit exitOverride only when added after it; make sure of it.
  const override = (c: Command) => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  return program;
}

/** Runs meshctl and returns its exit status: 0, 1 on any error, 2 for a deploy that did not succeed. */
export async function run(argv: string[], processEnv: NodeJS.ProcessEnv = process.env): Promise<number> {
  let ctx: Context | undefined;
  let json = argv.includes('--json');
  const program = buildProgram({
    context: (cmd) => {
      const opts = cmd.optsWithGlobals<{ json?: boolean }>();
      json = !!opts.json;
      ctx = new Context({ json }, processEnv);
      return ctx;
    },
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx?.exitCode ?? 0;
  } catch (err) {
    // Commander has already printed its own usage errors (and help/version output).
    if (err instanceof CommanderError) return err.exitCode;
    if (json) process.stdout.write(`${JSON.stringify(errorJson(err), null, 2)}\n`);
    process.stderr.write(formatError(err));
    return 1;
  }
}
