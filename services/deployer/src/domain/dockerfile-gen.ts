export type ProjectKind = 'dockerfile' | 'node' | 'python' | 'unknown';

export interface ProjectFiles {
  has(file: string): boolean;
  read(file: string): string | undefined;
}

export function detectProjectKind(files: ProjectFiles): ProjectKind {
  if (files.has('Dockerfile')) return 'dockerfile';
  if (files.has('package.json')) return 'node';
  if (['requirements.txt', 'pyproject.toml', 'app.py', 'main.py', 'Pipfile'].some((f) => files.has(f))) return 'python';
  return 'unknown';
}

const json = (s: string) => JSON.stringify(s);

/**
 * A Dockerfile for a Node project without one. The base image is a build arg so a
 * machine without a registry can pass a locally built one. npm runs only when the
 * project has dependencies and the base image has npm.
 */
export function nodeDockerfile(files: ProjectFiles, defaultBase: string): string {
  let pkg: { main?: string; scripts?: Record<string, string>; dependencies?: Record<string, string> } = {};
  try {
    pkg = JSON.parse(files.read('package.json') ?? '{}');
  } catch {
    /* an unreadable package.json still gets the default entry point */
  }
  const hasDeps = Object.keys(pkg.dependencies ?? {}).length > 0 && !files.has('node_modules');
  const install = hasDeps
    ? `RUN if command -v npm >/dev/null 2>&1; then npm ${files.has('package-lock.json') ? 'ci' : 'install'} --omit=dev; fi\n`
    : '';
  const start = pkg.scripts?.start;
  const cmd = start
    ? `CMD ["/bin/sh", "-c", ${json(start)}]`
    : `CMD ["node", ${json(pkg.main ?? (files.has('server.js') ? 'server.js' : 'index.js'))}]`;
  return `ARG BASE_IMAGE=${defaultBase}\nFROM \${BASE_IMAGE}\nWORKDIR /app\nENV NODE_ENV=production PATH=/app/node_modules/.bin:$PATH\nCOPY . /app\n${install}${cmd}\n`;
}

/** A Dockerfile for a Python project without one: requirements installed, then Procfile web, app.py or main.py. */
export function pythonDockerfile(files: ProjectFiles, defaultBase: string): string {
  const install = files.has('requirements.txt')
    ? 'RUN pip install --no-cache-dir -r requirements.txt\n'
    : files.has('pyproject.toml')
      ? 'RUN pip install --no-cache-dir .\n'
      : '';
  const procWeb = files
    .read('Procfile')
    ?.match(/^web:\s*(.+)$/m)?.[1]
    ?.trim();
  const cmd = procWeb
    ? `CMD ["/bin/sh", "-c", ${json(procWeb)}]`
    : `CMD ["python", ${json(files.has('main.py') && !files.has('app.py') ? 'main.py' : 'app.py')}]`;
  return `ARG BASE_IMAGE=${defaultBase}\nFROM \${BASE_IMAGE}\nWORKDIR /app\nENV PYTHONUNBUFFERED=1\nCOPY . /app\n${install}${cmd}\n`;
}
