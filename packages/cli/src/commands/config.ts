import type { Command } from 'commander';
import type { CommandEnv } from './command-env.js';

interface Reloaded {
  reloaded: boolean;
  changed: string[];
  needs_restart: string[];
  applied_at: string;
}

export function registerConfigCommands(program: Command, { context }: CommandEnv): void {
  const config = program.command('config').description("A droplet's configuration");

  config
    .command('reload <droplet>')
    .description(
      "Re-read the droplet's environment and env file (ENV_FILE, default <DATA_DIR>/<droplet>.env): it applies what can change live and names what needs a restart",
    )
    .option('--url <url>', 'the droplet URL (env MESHCTL_<DROPLET>_URL)')
    .action(async (droplet: string, o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const r = await (await ctx.droplet(droplet, o.url)).post<Reloaded>('/reload-config');
      ctx.out.result(r, () => {
        const live = r.changed.filter((k) => !r.needs_restart.includes(k));
        if (!r.changed.length) ctx.out.line(`${droplet}: configuration unchanged`);
        if (live.length) ctx.out.line(`${droplet}: applied ${live.join(', ')}`);
        if (r.needs_restart.length) ctx.out.line(`${droplet}: restart to apply ${r.needs_restart.join(', ')}`);
      });
    });
}
