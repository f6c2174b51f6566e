import { connect, isIP } from 'node:net';
import { defineActiveCheck, errorCode, type ActiveOptions, type Probe } from '@fulcrum/healthcheck-active';

export type TcpOptions = ActiveOptions;

/** keepalived TCP_CHECK: the server is up when a TCP connect succeeds within the timeout. */
export const tcpProbe: Probe = (target, signal) =>
  new Promise((resolve) => {
    const host = isIP(target.connectAddress) === 6 ? `[${target.connectAddress}]` : target.connectAddress;
    const where = `${host}:${target.connectPort}`;
    const socket = connect({
      host: target.connectAddress,
      port: target.connectPort,
      ...(target.bindTo ? { localAddress: target.bindTo } : {}),
    });
    const done = (ok: boolean, reason: string, code?: string) => {
      signal.removeEventListener('abort', onAbort);
      socket.removeAllListeners();
      socket.on('error', () => {}); // a late RST on a socket we are closing is no news
      socket.destroy();
      resolve({ ok, reason, ...(code ? { code } : {}) });
    };
    const onAbort = () => done(false, `connect to ${where} aborted`, 'timeout');
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => done(true, `connected to ${where}`));
    socket.once('error', (e) => done(false, e.message, errorCode(e)));
  });

export const tcp = defineActiveCheck<TcpOptions>({
  name: 'tcp',
  kernel: '^0.1.0',
  description: 'keepalived TCP_CHECK: a TCP connect within the timeout',
  probe: () => tcpProbe,
});
