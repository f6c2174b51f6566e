import { describe, expect, it } from 'vitest';
import { generatedName } from '../adm/args.js';
import { compareEndpoints, computeRates, largeNumber } from '../adm/format.js';
import type { ServiceView } from '../admin/status.js';

describe('adm text helpers', () => {
  it('scales large numbers as ipvsadm print_largenum: 9 columns, K/M/G/T past 100 million', () => {
    const table: [number, string][] = [
      [0, '        0'],
      [99_999_999, ' 99999999'],
      [100_000_000, '  100000K'],
      [999_999_999, '  999999K'],
      [1_000_000_000, '    1000M'],
      [99_999_999_999, '   99999M'],
      [100_000_000_000, '     100G'],
      [100_000_000_000_000, '     100T'],
    ];
    for (const [n, text] of table) expect([n, largeNumber(n)]).toEqual([n, text]);
    // --exact: at least 9 columns, one more than the digits past 8.
    expect(largeNumber(12, true)).toBe('       12');
    expect(largeNumber(123_456_789_012, true)).toBe(' 123456789012');
  });

  it('orders endpoints numerically, IPv4 before IPv6, then by port', () => {
    const sorted = ['[2001:db8::1]:80', '10.0.0.10:80', '10.0.0.9:443', '10.0.0.9:80', '[::1]:80'].sort(
      compareEndpoints,
    );
    expect(sorted).toEqual(['10.0.0.9:80', '10.0.0.9:443', '10.0.0.10:80', '[::1]:80', '[2001:db8::1]:80']);
  });

  it('computes rates per second from two samples', () => {
    const sample = (conns: number, bytes: number) =>
      [
        {
          name: 'web',
          stats: { conns, inPkts: 0, outPkts: 0, inBytes: bytes, outBytes: 0 },
          servers: [
            { server: '10.0.0.1:80', stats: { conns, inPkts: 0, outPkts: 0, inBytes: bytes, outBytes: 0 } },
          ],
        },
      ] as unknown as ServiceView[];
    const r = computeRates(sample(100, 1000), sample(300, 5000), 2);
    expect(r.get('web')!.service).toEqual({ cps: 100, inPps: 0, outPps: 0, inBps: 2000, outBps: 0 });
    expect(r.get('web')!.servers.get('10.0.0.1:80')!.cps).toBe(100);
    // Counters that went back (a restart) never give negative rates.
    expect(computeRates(sample(300, 0), sample(100, 0), 1).get('web')!.service.cps).toBe(0);
  });

  it('names services added with -A after protocol, address and port', () => {
    expect(generatedName('tcp', '10.0.0.1:80')).toBe('tcp-10.0.0.1-80');
    expect(generatedName('udp', '[2001:db8::1]:53')).toBe('udp-2001_db8__1-53');
  });
});
