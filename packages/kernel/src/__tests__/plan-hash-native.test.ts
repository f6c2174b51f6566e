// native/fulcrum/plan-hash.h, the planHash native dataplanes include, against planHash
// itself: compiled with g++ (every machine that builds Fulcrum's addons has it) and fed
// random tuples, IPv4 and IPv6, with random field lists.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIPv4 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HASH_FIELDS, planHash, type HashField } from '../plan.js';

const includeDir = createRequire(import.meta.url)('@fulcrum/kernel/native') as string;

const PROGRAM = `
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include "fulcrum/plan-hash.h"

// Per line: fields (digits), source address hex, source port, destination address hex, port.
static std::vector<uint8_t> hex(const char* s) {
  std::vector<uint8_t> b;
  for (size_t i = 0; s[i] && s[i + 1]; i += 2) {
    unsigned v;
    std::sscanf(s + i, "%2x", &v);
    b.push_back(static_cast<uint8_t>(v));
  }
  return b;
}
int main() {
  char f[16], sa[40], da[40];
  unsigned sp, dp;
  while (std::scanf("%15s %39s %u %39s %u", f, sa, &sp, da, &dp) == 5) {
    std::vector<int> fields;
    for (const char* p = f; *p; p++) if (*p != '-') fields.push_back(*p - '0');
    std::vector<uint8_t> s = hex(sa), d = hex(da);
    fulcrum::kernel::PlanHashTuple t{s.data(), static_cast<uint8_t>(s.size()), static_cast<uint16_t>(sp),
                                     d.data(), static_cast<uint8_t>(d.size()), static_cast<uint16_t>(dp)};
    std::printf("%u\\n", fulcrum::kernel::plan_hash(fields.data(), fields.size(), t));
  }
}
`;

/** An address's network-order bytes in hex (IPv4 dotted or IPv6). */
function addressHex(a: string): string {
  if (isIPv4(a))
    return a
      .split('.')
      .map((o) => Number(o).toString(16).padStart(2, '0'))
      .join('');
  const [head, tail = ''] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => g.padStart(4, '0')).join('');
}

describe('fulcrum/plan-hash.h, the header native dataplanes include', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-plan-hash-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('hashes as planHash for random tuples and field lists, IPv4 and IPv6', { timeout: 60_000 }, () => {
    const src = join(dir, 'plan-hash.cc');
    const bin = join(dir, 'plan-hash');
    writeFileSync(src, PROGRAM);
    execFileSync('g++', ['-std=c++11', '-O1', '-Wall', '-Werror', `-I${includeDir}`, src, '-o', bin], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const v4 = () => [0, 0, 0, 0].map(() => rnd(256)).join('.');
    const v6 = () =>
      Array.from({ length: 8 }, () => (rnd(4) === 0 ? '0' : rnd(65536).toString(16))).join(':');
    const cases = Array.from({ length: 2000 }, () => {
      const fields: HashField[] = Array.from({ length: 1 + rnd(4) }, () => HASH_FIELDS[rnd(4)]!);
      const six = rnd(3) === 0;
      return {
        fields,
        tuple: {
          sourceAddress: six ? v6() : v4(),
          sourcePort: rnd(65536),
          destinationAddress: six ? v6() : v4(),
          destinationPort: rnd(65536),
        },
      };
    });
    const input = cases
      .map(
        ({ fields, tuple: t }) =>
          `${fields.map((f) => HASH_FIELDS.indexOf(f)).join('')} ${addressHex(t.sourceAddress)} ${t.sourcePort} ${addressHex(t.destinationAddress)} ${t.destinationPort}`,
      )
      .join('\n');
    const native = execFileSync(bin, { input, encoding: 'utf8' }).trim().split('\n').map(Number);
    expect(native).toHaveLength(cases.length);
    expect(native).toEqual(cases.map(({ fields, tuple }) => planHash(fields, tuple)));
  });
});
