import { planHash, HASH_FIELDS, type HashField } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { loadNative, nativeUnavailableReason } from '../native.js';

const need = requires({ check: nativeUnavailableReason });

describe.skipIf(need.skip)(`native planHash reproduces the kernel's definition${need.note}`, () => {
  const hash = (fields: readonly HashField[], src: string, sport: number, dst = '10.0.0.1', dport = 80) =>
    loadNative().planHash(
      fields.map((f) => HASH_FIELDS.indexOf(f)),
      src,
      sport,
      dst,
      dport,
    );

  // The kernel's vectors (packages/kernel/src/__tests__/plan.test.ts), from an independent implementation.
  it.each([
    [['source-address'], '192.168.1.7', 40000, 1732467182],
    [['source-address', 'source-port'], '10.1.2.3', 0x1234, 200941749],
    [['source-address'], '2001:db8::1', 40000, 4279221231],
    [['source-address'], '2001:DB8:0:0:0:0:0:1', 40000, 4279221231],
    [['source-address'], '::ffff:10.0.0.1', 40000, 1408760293],
    [['destination-port'], '1.1.1.1', 40000, 1241137014],
  ] as const)('planHash(%j) of %s port %d is %d', (fields, src, sport, expected) => {
    expect(hash(fields, src, sport)).toBe(expected);
  });

  it('agrees with the kernel on every field combination over many tuples', () => {
    const combos: HashField[][] = [
      ['source-address'],
      ['source-address', 'source-port'],
      ['destination-address', 'destination-port'],
      ['source-port', 'destination-address', 'source-address', 'destination-port'],
    ];
    for (let i = 0; i < 500; i++) {
      const src = `10.${i & 255}.${(i * 7) & 255}.${(i * 13) & 255}`;
      const sport = (i * 977) & 0xffff;
      for (const fields of combos)
        expect(hash(fields, src, sport, '192.0.2.1', 443)).toBe(
          planHash(fields, {
            sourceAddress: src,
            sourcePort: sport,
            destinationAddress: '192.0.2.1',
            destinationPort: 443,
          }),
        );
    }
  });
});
