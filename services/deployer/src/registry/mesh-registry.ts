import { z } from 'zod';
import { REGISTRY_HOST_PATTERN } from './image-ref.js';

/** Docker's authconfig for one registry (dockerode `authconfig`); never logged, never returned. */
export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

/** The mesh's own image registry: where deploy images are pushed once and pulled by digest. */
export interface MeshRegistry {
  host: string;
  auth: RegistryAuth;
}

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v?.trim() ? v.trim() : undefined));

/** The deployer's settings for the mesh image registry (spread into its config schema). */
export const meshRegistryConfigShape = {
  /**
   * host:port of the mesh image registry as every server's engine reaches it. Unset: images
   * go from the building server to the others by export/import.
   */
  MESH_REGISTRY: optionalText
    .transform((v) => (v === 'off' ? undefined : v))
    .refine((v) => v === undefined || REGISTRY_HOST_PATTERN.test(v), 'must be host:port, e.g. 10.0.0.5:5000 (or off)'),
  MESH_REGISTRY_USERNAME: optionalText,
  MESH_REGISTRY_PASSWORD: optionalText,
  /** PEM file of the CA the registry's TLS certificate is from: provisioned servers trust it (certs.d). */
  MESH_REGISTRY_CA_FILE: optionalText,
};

/** The configured mesh registry, or undefined; a half-configured one is an error naming the variable. */
export function meshRegistryOf(c: {
  MESH_REGISTRY?: string;
  MESH_REGISTRY_USERNAME?: string;
  MESH_REGISTRY_PASSWORD?: string;
}): MeshRegistry | undefined {
  if (!c.MESH_REGISTRY) return undefined;
  if (!c.MESH_REGISTRY_USERNAME) throw new Error('MESH_REGISTRY_USERNAME is required when MESH_REGISTRY is set');
  if (!c.MESH_REGISTRY_PASSWORD) throw new Error('MESH_REGISTRY_PASSWORD is required when MESH_REGISTRY is set');
  return {
    host: c.MESH_REGISTRY,
    auth: { username: c.MESH_REGISTRY_USERNAME, password: c.MESH_REGISTRY_PASSWORD, serveraddress: c.MESH_REGISTRY },
  };
}

/** The repository an image base lives at in the mesh registry. */
export const meshRepository = (registry: MeshRegistry, imageBase: string) => `${registry.host}/${imageBase}`;

/** True when `ref` is an image of the mesh registry. */
export const inMeshRegistry = (registry: MeshRegistry | undefined, ref: string) => !!registry && ref.startsWith(`${registry.host}/`);
