import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, harness, LADDR, snapshot, VIP } from './fixtures.js';
import { TCP } from './frames.js';
import { expectedHeader, Flow, ppSettings, synOptions, toaSettings, tsOptions } from './insert-flow.js';
import { capture } from './tshark.js';

const need = requires({ commands: ['tshark'], check: nativeUnavailableReason });

/**
 * A whole connection, both ends' segments and what the pipeline made of them, in order:
 * the client-side stream (client ↔ VIP) and the server-side one (local address ↔ server)
 * are each complete, so tshark's sequence analysis checks the shifted numbers.
 */
function connection(f: Flow, withOptions: boolean, header?: () => number): void {
  const C = 1000 + f.cport;
  const S = 70000;
  const o = (v: number, e: number) => (withOptions ? { options: tsOptions(v, e) } : {});
  const req = Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n');
  const resp = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  f.client({ flags: TCP.SYN, seq: C, ...(withOptions ? { options: synOptions() } : {}) });
  const hl = header ? header() : 0; // known once the SYN picked the local port
  f.fromServer({
    flags: TCP.SYN | TCP.ACK,
    seq: S,
    ack: C + 1,
    ...(withOptions ? { options: synOptions(1460, 5) } : {}),
  });
  f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, ...o(1001, 5) });
  f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: S + 1, data: req, ...o(1002, 5) });
  f.fromServer({
    flags: TCP.ACK | TCP.PSH,
    seq: S + 1,
    ack: C + 1 + hl + req.length,
    data: resp,
    ...o(6, 1002),
  });
  f.client({ flags: TCP.ACK, seq: C + 1 + req.length, ack: S + 1 + resp.length, ...o(1003, 6) });
  f.client({ flags: TCP.FIN | TCP.ACK, seq: C + 1 + req.length, ack: S + 1 + resp.length, ...o(1004, 6) });
  f.fromServer({
    flags: TCP.FIN | TCP.ACK,
    seq: S + 1 + resp.length,
    ack: C + 2 + hl + req.length,
    ...o(7, 1004),
  });
  f.client({ flags: TCP.ACK, seq: C + 2 + req.length, ack: S + 2 + resp.length, ...o(1005, 7) });
}

describe.skipIf(need.skip)(`tshark decodes TOA and PROXY-protocol insertion${need.note}`, () => {
  it('every frame: checksums good, no sequence-analysis warning, option 254 and PROXY headers decoded', () => {
    // One harness, three services: local ports differ, so no two server-side streams share a 4-tuple.
    const services = [
      { port: 80, passthrough: toaSettings() },
      { port: 81, passthrough: ppSettings(1) },
      { port: 82, passthrough: ppSettings(2, { crc32c: true, uniqueId: true, authority: 'example' }) },
    ];
    const h = harness();
    h.apply(add(...services.map((x) => snapshot({ name: `s${x.port}`, ...x }))));
    const trace: Buffer[] = [];
    const headers: { cport: number; vport: number; length: number }[] = [];
    services.forEach((x, i) => {
      const f = new Flow(h, 44000 + i, x.port);
      connection(f, i !== 1, i === 0 ? undefined : () => expectedHeader(x.passthrough, f).length);
      trace.push(...f.trace);
      if (i) headers.push({ cport: f.cport, vport: x.port, length: expectedHeader(x.passthrough, f).length });
    });

    const rows = capture(trace, ['-o', 'tcp.try_heuristic_first:TRUE']).fields([
      'ip.checksum.status',
      'tcp.checksum.status',
      'tcp.analysis.flags',
      '_ws.expert.message',
      'ip.src',
      'tcp.srcport',
      'tcp.option_kind',
      'tcp.options.experimental.exid',
      'tcp.options.experimental.data',
      'proxy.src.ipv4',
      'proxy.srcport',
      'proxy.dst.ipv4',
      'proxy.dstport',
      'tcp.len',
    ]);
    expect(rows).toHaveLength(trace.length);
    for (const [ip, tcp, analysis, expert] of rows) {
      expect(ip).toBe('1');
      expect(tcp).toBe('1');
      expect(analysis).toBe('');
      expect(expert ?? '').not.toMatch(/checksum|retransmission|previous segment|unseen|out-of-order/i);
    }

    // TOA: exactly the handshake-completing ACK and the first data toward the server, with
    // the client's port and address: tshark decodes kind 254 as an RFC 3692 experiment, the
    // port as its "experiment identifier" and the address as its data.
    const withToa = rows.filter(([, , , , , , kinds]) => (kinds ?? '').split(',').includes('254'));
    const address = Buffer.from(CLIENT.ip.split('.').map(Number)).toString('hex');
    expect(withToa).toHaveLength(2);
    for (const r of withToa) {
      expect(r[4]).toBe(LADDR);
      expect(Number(r[7])).toBe(44000);
      expect(r[8]!.replace(/:/g, '')).toBe(address);
      expect(r[6]!.split(',')[0]).toBe('254'); // first, as DPVS puts it
    }

    // PROXY: one header per connection, toward the server, naming the client and the VIP.
    const proxied = rows.filter(([, , , , , , , , , src]) => (src ?? '') !== '');
    expect(proxied).toHaveLength(2);
    proxied.forEach((r, i) => {
      expect(r.slice(9, 13)).toEqual([CLIENT.ip, String(headers[i]!.cport), VIP, String(headers[i]!.vport)]);
      expect(r[4]).toBe(LADDR);
      expect(Number(r[13])).toBe(headers[i]!.length);
    });
  });
});
