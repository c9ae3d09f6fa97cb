import { z } from 'zod';
import { baseConfigShape, createDroplet, InvalidRequest, type Bus, type Env, type RegistryLink } from '@droplet-mesh/udc-kit';

export const exampleConfigSchema = z.object({ ...baseConfigShape, PORT: baseConfigShape.PORT.default(8900) });
export type ExampleConfig = z.infer<typeof exampleConfigSchema>;

/** A minimal droplet built with udc-kit: one route, one message handler. */
export function createExampleDroplet(deps: {
  env: Env;
  name?: string;
  bus?: Bus;
  registry?: RegistryLink;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
}) {
  const { name = 'example', ...rest } = deps;
  return createDroplet({
    name,
    version: '0.1.0',
    capabilities: ['echo'],
    configSchema: exampleConfigSchema,
    ...rest,
    routes(api) {
      api.post(
        '/echo',
        { scope: 'write', summary: 'Echo a message back', body: z.object({ text: z.string().min(1).max(1000) }) },
        ({ body }) => ({ echo: body.text }),
      );
    },
    messageHandlers: {
      echo: (payload) => {
        if (typeof payload.text !== 'string') throw new InvalidRequest('payload.text must be a string');
        return { echo: payload.text };
      },
    },
  });
}
