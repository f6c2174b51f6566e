import {
  ErrorCodes,
  FulcrumError,
  type ApplyResult,
  type Kernel,
  type RealServerInput,
  type ServiceInput,
} from '@fulcrum/kernel';
import { HttpError, objectBody, serverParam } from './http.js';
import type { Route, RouteContext } from './server.js';
import { dataplaneServices, serviceView } from './status.js';

const SERVICE = '([^/]+)';
const SERVER = '([^/]+)';

/**
 * A JSON merge patch (RFC 7396, one level): `null` removes a field, anything else replaces it.
 * The kernel validates the result whole.
 */
function mergePatch<T extends object>(body: Record<string, unknown>): Partial<T> {
  const patch: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) patch[k] = v === null ? undefined : v;
  return patch as Partial<T>;
}

const withView = (kernel: Kernel, name: string, reasons: RouteContext['reasons'], result: ApplyResult) => {
  const snap = kernel.snapshots().find((s) => s.name === name);
  return {
    ...result,
    ...(snap
      ? { service: serviceView(kernel, snap, dataplaneServices(kernel).get(snap.name), reasons) }
      : {}),
  };
};

export const writeRoutes: Route[] = [
  {
    method: 'POST',
    pattern: /^\/api\/v1\/services$/,
    write: true,
    handle: async ({ kernel, body, reasons }) => {
      const input = objectBody(await body(), 'a service, such as {"name":"web","listen":"10.0.0.1:80"}');
      const result = await kernel.addService(input as unknown as ServiceInput);
      return [201, withView(kernel, String(input.name), reasons, result)];
    },
  },
  {
    method: 'PATCH',
    pattern: new RegExp(`^/api/v1/services/${SERVICE}$`),
    write: true,
    handle: async ({ kernel, params, body, reasons }) => {
      const patch = mergePatch<ServiceInput>(objectBody(await body(), 'the fields of the service to change'));
      const result = await kernel.updateService(params[0]!, patch);
      return [200, withView(kernel, patch.name ?? params[0]!, reasons, result)];
    },
  },
  {
    method: 'DELETE',
    pattern: new RegExp(`^/api/v1/services/${SERVICE}$`),
    write: true,
    handle: async ({ kernel, params }) => [200, await kernel.removeService(params[0]!)],
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/api/v1/services/${SERVICE}/servers$`),
    write: true,
    handle: async ({ kernel, params, body, reasons }) => {
      const input = objectBody(await body(), 'a real server, such as {"address":"10.0.0.2:80","weight":1}');
      const result = await kernel.addRealServer(params[0]!, input as unknown as RealServerInput);
      return [201, withView(kernel, params[0]!, reasons, result)];
    },
  },
  {
    method: 'PATCH',
    pattern: new RegExp(`^/api/v1/services/${SERVICE}/servers/${SERVER}$`),
    write: true,
    handle: async ({ kernel, params, body, reasons }) => {
      const server = serverParam(params[1]!);
      const patch = mergePatch<RealServerInput>(
        objectBody(await body(), 'the fields of the server to change'),
      );
      const result = await kernel.updateRealServer(params[0]!, server, patch);
      return [200, withView(kernel, params[0]!, reasons, result)];
    },
  },
  {
    method: 'DELETE',
    pattern: new RegExp(`^/api/v1/services/${SERVICE}/servers/${SERVER}$`),
    write: true,
    handle: async ({ kernel, params, reasons }) => {
      const result = await kernel.removeRealServer(params[0]!, serverParam(params[1]!));
      return [200, withView(kernel, params[0]!, reasons, result)];
    },
  },
  {
    method: 'PUT',
    pattern: new RegExp(`^/api/v1/services/${SERVICE}/servers/${SERVER}/weight$`),
    write: true,
    handle: async ({ kernel, params, body, reasons }) => {
      const server = serverParam(params[1]!);
      const input = objectBody(await body(), '{"weight": <0..65535>}');
      if (!('weight' in input))
        throw new HttpError(400, 'FULCRUM_ADMIN_BAD_REQUEST', 'the body needs a weight: {"weight": 5}');
      const result = await kernel.setWeight(params[0]!, server, input.weight as number);
      return [200, withView(kernel, params[0]!, reasons, result)];
    },
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/api/v1/services/${SERVICE}/servers/${SERVER}/drain$`),
    write: true,
    handle: async ({ kernel, params, reasons }) => {
      const result = await kernel.drainRealServer(params[0]!, serverParam(params[1]!));
      return [200, withView(kernel, params[0]!, reasons, result)];
    },
  },
  {
    method: 'POST',
    pattern: /^\/api\/v1\/reload$/,
    write: true,
    handle: async ({ options }) => {
      if (!options.reload)
        throw new FulcrumError(ErrorCodes.STATE, 'this admin server has no config file to reload');
      return [200, await options.reload()];
    },
  },
];
