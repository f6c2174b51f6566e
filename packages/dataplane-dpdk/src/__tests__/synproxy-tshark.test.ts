import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, fromClient, harness, SERVERS, serverSeg, snapshot, VIP } from './fixtures.js';
import { opt, parseFrame, TCP, tcpFrame, type TcpFields } from './frames.js';
import { capture } from './tshark.js';

const need = requires({ commands: ['tshark'], check: nativeUnavailableReason });

/**
 * Whole SYNPROXY connections as each side's wire shows them: the client's view (what it
 * sent, what the balancer sent it) and the servers' view, so tshark's sequence analysis
 * follows each side's own sequence space.
 */
function views(timestamps: boolean): { wan: Buffer[]; lan: Buffer[] } {
  const h = harness({ synproxy: { synackOptions: { timestamp: timestamps } } });
  h.apply(add(snapshot({ synproxy: true })));
  const wan: Buffer[] = [];
  const lan: Buffer[] = [];
  const keep = (out: { port: string; frame: Buffer }[]) => {
    for (const o of out) (o.port === 'wan' ? wan : lan).push(o.frame);
    return out.map((o) => parseFrame(o.frame));
  };
  for (let i = 0; i < 4; i++) {
    const cport = 41000 + i;
    const cisn = 100_000 * (i + 1);
    let now = 1000 * i;
    let cts = 5000 + i;
    let sts = 900_000 + i;
    let cookieTs = 0;
    const client = (f: Partial<TcpFields> & { flags: number }) => {
      const frame = tcpFrame(fromClient, {
        src: CLIENT.ip,
        dst: VIP,
        sport: cport,
        dport: 80,
        window: 502,
        ...f,
        ...(timestamps
          ? { options: Buffer.concat([f.options ?? Buffer.alloc(0), opt.ts(cts++, cookieTs)]) }
          : {}),
      });
      wan.push(frame);
      return keep(h.inject('wan', frame, (now += 3)));
    };
    let lport = 0;
    let server = 0;
    const fromSrv = (f: Partial<TcpFields> & { flags: number }, ecr: number) => {
      const frame = serverSeg(server, lport, {
        window: 501,
        ...f,
        ...(timestamps ? { options: Buffer.concat([f.options ?? Buffer.alloc(0), opt.ts(sts++, ecr)]) } : {}),
      });
      lan.push(frame);
      return keep(h.inject('lan', frame, (now += 3)));
    };
    const [sa] = client({
      flags: TCP.SYN,
      seq: cisn,
      options: Buffer.concat([opt.mss(1460), opt.sackPermitted()]),
    });
    const cookie = sa!.tcp!.seq;
    cookieTs = sa!.tcp!.opts.ts?.val ?? 0;
    const [syn] = client({ flags: TCP.ACK, seq: cisn + 1, ack: cookie + 1 });
    lport = syn!.tcp!.sport;
    server = SERVERS.findIndex((s) => s.ip === syn!.ip!.dst);
    const sisn = 7_000_000 * (i + 1);
    const serverEcr = () => syn!.tcp!.opts.ts?.val ?? 0;
    fromSrv(
      {
        flags: TCP.SYN | TCP.ACK,
        seq: sisn,
        ack: cisn + 1,
        options: Buffer.concat([opt.mss(1460), opt.sackPermitted()]),
      },
      serverEcr(),
    );
    const req = Buffer.from(`GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    client({ flags: TCP.ACK | TCP.PSH, seq: cisn + 1, ack: cookie + 1, data: req });
    const body = Buffer.alloc(600 + i * 50, 0x41 + i);
    const ecr = () => cts - 1;
    fromSrv(
      { flags: TCP.ACK, seq: sisn + 1, ack: cisn + 1 + req.length, data: body.subarray(0, 300) },
      ecr(),
    );
    fromSrv(
      { flags: TCP.ACK | TCP.PSH, seq: sisn + 301, ack: cisn + 1 + req.length, data: body.subarray(300) },
      ecr(),
    );
    cookieTs += 2; // the client echoes the latest TSval it saw (translated into the cookie clock)
    client({ flags: TCP.ACK, seq: cisn + 1 + req.length, ack: cookie + 1 + body.length });
    client({ flags: TCP.FIN | TCP.ACK, seq: cisn + 1 + req.length, ack: cookie + 1 + body.length });
    fromSrv({ flags: TCP.FIN | TCP.ACK, seq: sisn + 1 + body.length, ack: cisn + 2 + req.length }, ecr());
    cookieTs += 1;
    client({ flags: TCP.ACK, seq: cisn + 2 + req.length, ack: cookie + 2 + body.length });
  }
  return { wan, lan };
}

describe.skipIf(need.skip)(`tshark decodes SYNPROXY connections on both sides${need.note}`, () => {
  it.each([false, true])('with timestamps %s: every checksum good, no sequence-analysis problem', (ts) => {
    const { wan, lan } = views(ts);
    for (const [side, frames] of [
      ['wan', wan],
      ['lan', lan],
    ] as const) {
      const tshark = capture(frames);
      const rows = tshark.fields([
        'ip.checksum.status',
        'tcp.checksum.status',
        'tcp.analysis.flags',
        '_ws.expert.message',
      ]);
      expect(rows).toHaveLength(frames.length);
      expect(rows.filter(([ip, tcp]) => ip !== '1' || tcp !== '1')).toEqual([]);
      // The cookie SYN-ACK's zero window (DPVS's way of holding the client's data) and the
      // window update are the only analysis notes allowed: nothing lost, retransmitted,
      // out of order, ACKing unseen data, or with a bad timestamp.
      const problems = tshark.fields(
        ['frame.number', '_ws.expert.message'],
        '-Y',
        'tcp.analysis.flags && !tcp.analysis.zero_window && !tcp.analysis.window_update',
      );
      expect(problems, side).toEqual([]);
      const zero = tshark
        .run('-Y', 'tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.window_size_value == 0')
        .trim();
      expect(zero ? zero.split('\n').length : 0).toBe(side === 'wan' ? 4 : 0); // one cookie SYN-ACK per connection
    }
  });
});
