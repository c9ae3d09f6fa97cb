/** Names and labels derived from a project/service/environment, in one place. */
export const MANAGED_LABEL = 'mesh.managed';

export const targetId = (project: string, service: string, environment: string) => `app-${project}-${service}-${environment}`;
export const imageBaseOf = (project: string, service: string, override?: string) => override ?? `mesh-apps/${project}-${service}`;
export const deployTag = (imageBase: string, deploymentId: string) => `${imageBase}:deploy_${deploymentId.replace(/-/g, '').slice(0, 8)}`;
export const containerName = (target: string, deploymentId: string, replica: number) => `${target}-${deploymentId.slice(0, 8)}-${replica}`;

export function meshLabels(d: { project: string; service: string; environment: string; id: string }): Record<string, string> {
  return {
    [MANAGED_LABEL]: 'true',
    'mesh.project': d.project,
    'mesh.service': d.service,
    'mesh.environment': d.environment,
    'mesh.deployment': d.id,
  };
}
