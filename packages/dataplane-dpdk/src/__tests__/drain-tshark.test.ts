// tshark, an oracle no one here wrote, follows each side's TCP stream up to the RSTs that
// end a retired server's connections: every checksum good, and each RST exactly where its
// stream goes on by tshark's own reckoning (relative sequence numbers from each stream's
// SYN): the next sequence number of its direction, which the receiver acknowledged, with
// and without sequence shifts. (Wireshark's expert analysis does not judge a RST's
// sequence number: that is checked on the fields.)
import type { PassthroughSettings } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, harness, SERVERS, snapshot, update } from './fixtures.js';
import { parseFrame, TCP } from './frames.js';
import { Flow, ppSettings } from './insert-flow.js';
import { capture } from './tshark.js';

const need = requires({ commands: ['tshark'], check: nativeUnavailableReason });

const C = 3_000_000;
const S = 9_000_000;

/** A few connections, each with data both ways, then server 0 expired: both sides' views. */
function views(opts: { synproxy?: boolean; passthrough?: PassthroughSettings }): {
  wan: Buffer[];
  lan: Buffer[];
  rsts: number;
} {
  const h = harness();
  const base = {
    servers: [{ address: SERVERS[0]!.ip, port: 8080 }],
    ...(opts.synproxy ? { synproxy: true } : {}),
    ...(opts.passthrough ? { passthrough: opts.passthrough } : {}),
  };
  h.apply(add(snapshot(base)));
  const flows: Flow[] = [];
  let now = 0;
  for (let i = 0; i < 3; i++) {
    const f = new Flow(h, 43000 + i);
    flows.push(f);
    const cisn = C + i * 100_000;
    let ack = S + 1; // what the client acknowledges (its view of the server's stream)
    const first = f.client({ flags: TCP.SYN, seq: cisn, window: 502 }, (now += 5));
    if (opts.synproxy) {
      ack = first[0]!.tcp!.seq + 1; // the cookie
      f.lport = 0;
      f.client({ flags: TCP.ACK, seq: cisn + 1, ack, window: 502 }, (now += 5));
    }
    const shift = ack - (S + 1); // s2c_delta as the client sees it
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: cisn + 1, window: 501 }, (now += 5));
    if (!opts.synproxy) f.client({ flags: TCP.ACK, seq: cisn + 1, ack, window: 502 }, (now += 5));
    const lanAck = () => {
      // The server acknowledges what it received (the PROXY header included).
      const last = f.frames.map((b) => parseFrame(b)).filter((p) => p.ip!.dst === SERVERS[0]!.ip && p.tcp);
      const p = last[last.length - 1]!;
      return p.tcp!.seq + p.payload.length;
    };
    const req = Buffer.alloc(50 + i, 0x61);
    f.client({ flags: TCP.ACK | TCP.PSH, seq: cisn + 1, ack, data: req, window: 502 }, (now += 5));
    const resp = Buffer.alloc(300 + i, 0x62);
    f.fromServer(
      { flags: TCP.ACK | TCP.PSH, seq: S + 1, ack: lanAck(), data: resp, window: 501 },
      (now += 5),
    );
    f.client(
      { flags: TCP.ACK, seq: cisn + 1 + req.length, ack: S + 1 + resp.length + shift, window: 502 },
      (now += 5),
    );
  }
  const out = h.apply(
    update(
      snapshot({
        ...base,
        servers: [{ address: SERVERS[0]!.ip, port: 8080, weight: 0 }],
        retired: [{ server: `${SERVERS[0]!.ip}:8080`, action: 'expire' }],
        version: 2,
      }),
    ),
  );
  const wan: Buffer[] = [];
  const lan: Buffer[] = [];
  const touchesClient = (b: Buffer) => {
    const p = parseFrame(b);
    return p.ip?.src === CLIENT.ip || p.ip?.dst === CLIENT.ip;
  };
  // Connection by connection, each side's wire in order, then the RSTs.
  for (const f of flows) for (const b of f.trace) (touchesClient(b) ? wan : lan).push(b);
  for (const o of out) (o.port === 'wan' ? wan : lan).push(o.frame);
  return { wan, lan, rsts: out.length };
}

describe.skipIf(need.skip)(`tshark follows each side's stream up to the RSTs${need.note}`, () => {
  it.each([
    ['plain FULLNAT', {}],
    ['SYNPROXY', { synproxy: true }],
    ['PROXY protocol v1', { passthrough: ppSettings(1) }],
    ['SYNPROXY and PROXY protocol v2', { synproxy: true, passthrough: ppSettings(2) }],
  ] as const)('%s: checksums good, each RST where its stream goes on', (name, opts) => {
    const { wan, lan, rsts } = views(opts);
    expect(rsts).toBe(6); // three connections, one RST toward each side
    for (const [side, frames] of [
      ['wan', wan],
      ['lan', lan],
    ] as const) {
      const cap = capture(frames, ['--disable-protocol', 'http', '-o', 'tcp.relative_sequence_numbers:TRUE']);
      const rows = cap.fields(['ip.checksum.status', 'tcp.checksum.status']);
      expect(rows).toHaveLength(frames.length);
      expect(rows.filter(([ip, tcp]) => ip !== '1' || tcp !== '1')).toEqual([]);
      // tshark's own stream tracking (relative numbers from each stream's SYN): a RST must
      // sit exactly where its direction's stream goes on, at what the receiver acknowledged.
      const segs = cap
        .fields(['tcp.stream', 'ip.src', 'tcp.flags.reset', 'tcp.seq', 'tcp.nxtseq', 'tcp.ack'])
        .map(([stream, src, rst, seq, nxt, ack]) => ({
          stream,
          src,
          rst: rst === '1' || rst === 'True',
          seq: Number(seq),
          nxt: Number(nxt),
          ack: Number(ack),
        }));
      const resets = segs.filter((s) => s.rst);
      expect(resets, side).toHaveLength(3);
      for (const r of resets) {
        const before = segs.slice(0, segs.indexOf(r)).filter((s) => s.stream === r.stream && !s.rst);
        const same = before.filter((s) => s.src === r.src);
        const other = before.filter((s) => s.src !== r.src);
        expect([r.seq, r.seq], `${name} ${side} stream ${r.stream}`).toEqual([
          same[same.length - 1]!.nxt,
          other[other.length - 1]!.ack,
        ]);
        expect(r.ack, `${name} ${side} stream ${r.stream}`).toBe(other[other.length - 1]!.nxt);
      }
      // Only the cookie SYN-ACK's zero window and its window update may be noted.
      const problems = cap
        .run(
          '-Y',
          'tcp.analysis.flags && !tcp.analysis.zero_window && !tcp.analysis.window_update',
          '-T',
          'fields',
          '-e',
          'frame.number',
          '-e',
          '_ws.expert.message',
        )
        .trim();
      expect(problems, `${name} ${side}`).toBe('');
    }
  });
});
