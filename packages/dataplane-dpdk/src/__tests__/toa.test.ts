import { requires } from '@fulcrum/testkit';
import { encodeToa, findToa, insertToa, tcpOption } from '@fulcrum/toa';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, harness, snapshot } from './fixtures.js';
import { TCP } from './frames.js';
import { Flow, mssOf, synOptions, toaSettings, tsOptions } from './insert-flow.js';

const need = requires({ check: nativeUnavailableReason });

const C = 1000; // client ISN
const S = 5000; // server ISN

/** SYN, SYN-ACK: a connection whose next client segment is the handshake-completing ACK. */
function openToa(f: Flow): void {
  f.client({ flags: TCP.SYN, seq: C, options: synOptions() });
  f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1, options: synOptions(1460, 7) });
}

describe.skipIf(need.skip)(`TOA insertion (passthrough toa), packet by packet${need.note}`, () => {
  it('puts option 254 with the client address on the handshake ACK and the first data, never on SYN', () => {
    const h = harness();
    h.apply(add(snapshot({ passthrough: toaSettings() })));
    const f = new Flow(h, 41000);
    const client = { address: CLIENT.ip, port: 41000 };

    const [syn] = f.client({ flags: TCP.SYN, seq: C, options: synOptions() });
    expect(syn!.tcp!.options).toEqual(synOptions());
    expect(findToa(syn!.tcp!.options)).toBeUndefined();

    // DPVS lowers the SYN-ACK's MSS by the option's length, so full-sized segments keep room.
    const [synAck] = f.fromServer({
      flags: TCP.SYN | TCP.ACK,
      seq: S,
      ack: C + 1,
      options: synOptions(1460, 7),
    });
    expect(mssOf(synAck!.tcp!.options)).toBe(1452);
    expect(synAck!.tcp!.checksumOk).toBe(true);

    const ackOpts = tsOptions(1001, 7);
    const [ack] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, options: ackOpts });
    expect(ack!.port).toBe('lan');
    expect(ack!.tcp!.options).toEqual(insertToa(ackOpts, client));
    expect(ack!.tcp!.options.subarray(0, 8)).toEqual(encodeToa(client));
    expect(findToa(ack!.tcp!.options)).toEqual({ ...client, family: 4 });
    expect(ack!.raw.length).toBe(14 + 20 + 20 + 12 + 8);
    expect(ack!.ip!.checksumOk).toBe(true);
    expect(ack!.tcp).toMatchObject({ seq: C + 1, ack: S + 1, checksumOk: true });

    const request = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const [data] = f.client({
      flags: TCP.ACK | TCP.PSH,
      seq: C + 1,
      ack: S + 1,
      options: ackOpts,
      data: request,
    });
    expect(findToa(data!.tcp!.options)).toEqual({ ...client, family: 4 });
    expect(data!.payload).toEqual(request);
    expect(data!.tcp!.checksumOk && data!.ip!.checksumOk).toBe(true);

    // Once the client acknowledges the server's first byte, segments go as they came.
    f.fromServer({
      flags: TCP.ACK | TCP.PSH,
      seq: S + 1,
      ack: C + 1 + request.length,
      data: Buffer.from('HTTP/1.1 200'),
    });
    const [later] = f.client({ flags: TCP.ACK, seq: C + 1 + request.length, ack: S + 13, options: ackOpts });
    expect(later!.tcp!.options).toEqual(ackOpts);
    expect(h.counters()).toMatchObject({ toa_inserted: 2, toa_pruned: 0, toa_skipped_no_room: 0 });
  });

  it('never puts it on a RST', () => {
    const h = harness();
    h.apply(add(snapshot({ passthrough: toaSettings() })));
    const f = new Flow(h, 41001);
    openToa(f);
    const [rst] = f.client({ flags: TCP.RST | TCP.ACK, seq: C + 1, ack: S + 1 });
    expect(rst!.tcp!.options).toEqual(Buffer.alloc(0));
    expect(h.counters().toa_inserted).toBe(0);
  });

  it('prunes padding and SACK blocks when the 40-byte option space is full (as @fulcrum/toa does)', () => {
    const h = harness();
    h.apply(add(snapshot({ passthrough: toaSettings('prune') })));
    const f = new Flow(h, 41002);
    openToa(f);
    const client = { address: CLIENT.ip, port: 41002 };
    const full = Buffer.concat([
      tsOptions(1001, 7),
      tcpOption.nop(),
      tcpOption.nop(),
      tcpOption.sack([
        [S + 100, S + 200],
        [S + 300, S + 400],
        [S + 500, S + 600],
      ]),
    ]);
    expect(full.length).toBe(40);
    expect(() => insertToa(full, client)).toThrow(/no room/);
    const [ack] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, options: full });
    expect(ack!.tcp!.options).toEqual(insertToa(full, client, { onNoRoom: 'prune' }));
    expect(findToa(ack!.tcp!.options)).toEqual({ ...client, family: 4 });
    expect(ack!.tcp!.options.includes(Buffer.from([8, 10]))).toBe(true); // timestamps kept
    expect(ack!.tcp!.checksumOk && ack!.ip!.checksumOk).toBe(true);
    expect(h.counters()).toMatchObject({ toa_inserted: 1, toa_pruned: 1 });
  });

  it('with onNoRoom: skip, sends a full segment unchanged and counts it', () => {
    const h = harness();
    h.apply(add(snapshot({ passthrough: toaSettings('skip') })));
    const f = new Flow(h, 41003);
    openToa(f);
    const full = Buffer.concat([
      tsOptions(1001, 7),
      tcpOption.nop(),
      tcpOption.nop(),
      tcpOption.sack([
        [S + 100, S + 200],
        [S + 300, S + 400],
        [S + 500, S + 600],
      ]),
    ]);
    const [ack] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, options: full });
    expect(ack!.tcp!.options).toEqual(full);
    expect(ack!.tcp!.checksumOk).toBe(true);
    expect(h.counters()).toMatchObject({ toa_inserted: 0, toa_skipped_no_room: 1 });
  });

  it('replaces a kind-254 option the client forged with its own, even in a full option space', () => {
    const h = harness();
    h.apply(add(snapshot({ passthrough: toaSettings('skip') })));
    const f = new Flow(h, 41005);
    openToa(f);
    const client = { address: CLIENT.ip, port: 41005 };
    const forged = encodeToa({ address: '192.0.2.66', port: 6666 });
    const full = Buffer.concat([
      tsOptions(1001, 7),
      forged,
      tcpOption.sack([
        [S + 100, S + 200],
        [S + 300, S + 400],
      ]),
      tcpOption.nop(),
      tcpOption.nop(),
    ]);
    expect(full.length).toBe(40);
    const [ack] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, options: full });
    expect(ack!.tcp!.options).toEqual(insertToa(full, client));
    expect(findToa(ack!.tcp!.options)).toEqual({ ...client, family: 4 });
    expect(ack!.tcp!.options.includes(forged)).toBe(false);
    expect(ack!.tcp!.checksumOk && ack!.ip!.checksumOk).toBe(true);
    expect(h.counters()).toMatchObject({ toa_inserted: 1, toa_skipped_no_room: 0 });
  });

  it('skips a segment the option would push past the MTU, and counts it', () => {
    const h = harness({
      ports: [
        { name: 'wan', mac: '02:00:00:00:00:01', addresses: ['10.1.0.1/24'] },
        { name: 'lan', mac: '02:00:00:00:00:02', addresses: ['10.2.0.1/24'], mtu: 600 },
      ],
    });
    h.apply(add(snapshot({ passthrough: toaSettings() })));
    const f = new Flow(h, 41004);
    openToa(f);
    const opts = tsOptions(1001, 7);
    const [ack] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, options: opts });
    expect(findToa(ack!.tcp!.options)).toBeDefined();
    const big = Buffer.alloc(600 - 20 - 20 - 12, 0x61);
    const [data] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, options: opts, data: big });
    expect(data!.tcp!.options).toEqual(opts);
    expect(data!.payload).toEqual(big);
    expect(data!.tcp!.checksumOk).toBe(true);
    // One byte less and it fits exactly.
    const fits = big.subarray(8);
    const [data2] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, options: opts, data: fits });
    expect(findToa(data2!.tcp!.options)).toBeDefined();
    expect(data2!.raw.length).toBe(14 + 600);
    expect(h.counters()).toMatchObject({ toa_inserted: 2, toa_skipped_mtu: 1 });
  });
});
