import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../dist/bin.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fulcrum = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', timeout: 15_000 });

describe('fulcrum import keepalived', () => {
  it('prints a valid Fulcrum config on stdout and every note, with its line, on stderr', () => {
    writeFileSync(
      join(dir, 'keepalived.conf'),
      `vrrp_instance VI_1 {
    state MASTER
}
virtual_server 192.0.2.10 80 {
    lb_algo wlc
    lb_kind DR
    protocol TCP
    real_server 192.0.2.11 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
`,
    );
    const r = fulcrum('import', 'keepalived', 'keepalived.conf');
    expect(r.status).toBe(0);
    expect(parse(r.stdout)).toEqual({
      dataplane: 'socket',
      services: [
        {
          name: 'tcp-192.0.2.10-80',
          listen: '192.0.2.10:80',
          protocol: 'tcp',
          scheduler: 'wlc',
          realServers: [{ address: '192.0.2.11:80', weight: 2 }],
          healthChecks: [{ name: 'tcp', options: { timeout: 3 } }],
          onFailure: 'remove',
        },
      ],
    });
    expect(r.stderr.split('\n')).toEqual([
      'keepalived.conf:1: not-translated: vrrp_instance VI_1: VRRP is not part of Fulcrum: keep keepalived for VRRP beside Fulcrum',
      expect.stringMatching(/^keepalived\.conf:6: approximated: lb_kind DR: Fulcrum forwards in FULLNAT/),
      '1 virtual server(s) translated, 2 note(s)',
      '',
    ]);
    writeFileSync(join(dir, 'out.yaml'), r.stdout);
    expect(fulcrum('validate', 'out.yaml')).toMatchObject({ status: 0 });
  });

  it('refuses unbalanced files, unreadable files and bad usage with their exit codes', () => {
    writeFileSync(join(dir, 'broken.conf'), 'virtual_server 192.0.2.10 80 {\n  lb_algo rr\n');
    expect(fulcrum('import', 'keepalived', 'broken.conf')).toMatchObject({
      status: 3,
      stderr: expect.stringMatching(
        /^broken\.conf:1: error FULCRUM_IMPORT_PARSE: line 1: "\{" is never closed/,
      ),
    });
    expect(fulcrum('import', 'keepalived', 'missing.conf')).toMatchObject({
      status: 3,
      stderr: expect.stringMatching(/FULCRUM_CONFIG_READ/),
    });
    expect(fulcrum('import', 'haproxy', 'x.cfg')).toMatchObject({
      status: 2,
      stderr: expect.stringMatching(/usage: fulcrum import keepalived/),
    });
  });
});
