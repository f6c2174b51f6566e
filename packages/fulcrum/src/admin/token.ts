import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConfigError, type AdminSpec } from '@fulcrum/kernel';

import { TOKEN_ENV } from '../token-env.js';

export { TOKEN_ENV };

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback: the only addresses the admin API may use without a token. */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase().replace(/^::ffff:/, '');
  return /^127\.\d+\.\d+\.\d+$/.test(a) || a === '::1';
}

/**
 * The bearer token write requests must carry: the contents of `admin.tokenFile` (relative
 * to the config file), else $FULCRUM_ADMIN_TOKEN, else none. Off loopback a token is
 * required: without one the admin API would let anyone on the network change the balancer.
 */
export async function adminToken(
  admin: AdminSpec,
  configFile: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  let token: string | undefined;
  if (admin.tokenFile) {
    const file = resolve(dirname(resolve(configFile)), admin.tokenFile);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new ConfigError([
        { path: 'admin.tokenFile', message: `cannot read ${file}: ${(e as Error).message}` },
      ]);
    }
    token = text.trim();
    if (!token) throw new ConfigError([{ path: 'admin.tokenFile', message: `${file} is empty` }]);
    if (/\s/.test(token))
      throw new ConfigError([
        { path: 'admin.tokenFile', message: `${file} must hold one token with no whitespace in it` },
      ]);
  } else if (env[TOKEN_ENV]?.trim()) {
    token = env[TOKEN_ENV].trim();
  }
  if (!token && !isLoopback(admin.listen.address)) {
    throw new ConfigError([
      {
        path: 'admin.listen',
        message: `${admin.listen.address} is not a loopback address: set admin.tokenFile or ${TOKEN_ENV} so that write requests need a bearer token, or listen on 127.0.0.1`,
      },
    ]);
  }
  return token;
}
