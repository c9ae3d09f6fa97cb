// `npm run build|lint|format|bench`: a workspace tool (turbo, biome) with pnpm on PATH, as turbo needs.
import { spawnSync } from 'node:child_process';
import { ensurePnpmOnPath, ROOT, runScript } from './ensure-world.mjs';

await runScript(async () => {
  ensurePnpmOnPath();
  const res = spawnSync('pnpm', ['exec', ...process.argv.slice(2)], { cwd: ROOT, stdio: 'inherit' });
  process.exit(res.status ?? 1);
});
