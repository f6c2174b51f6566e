import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { pcap } from './frames.js';

/** Frames written to a pcap for tshark, the oracle no one here wrote. */
export interface Capture {
  /** tshark's output on the capture: checksums verified, sequence analysis on, plus `args`. */
  run(...args: string[]): string;
  /** The named fields of each frame (or of each one `args` such as `-Y` keep), split on '|'. */
  fields(names: readonly string[], ...args: string[]): string[][];
}

/**
 * Writes `frames` to a pcap that lives until the current test ends, and reads it back with
 * tshark. `prefs` are extra `-o` preferences or options every run gets (e.g.
 * `['--disable-protocol', 'dns']`). Call it inside a test.
 */
export function capture(frames: readonly Buffer[], prefs: readonly string[] = []): Capture {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-dpdk-pcap-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'frames.pcap');
  writeFileSync(file, pcap(frames));
  const run = (...args: string[]): string =>
    execFileSync(
      'tshark',
      [
        '-n',
        '-r',
        file,
        ...['ip', 'tcp', 'udp'].flatMap((p) => ['-o', `${p}.check_checksum:TRUE`]),
        '-o',
        'tcp.analyze_sequence_numbers:TRUE',
        ...prefs,
        ...args,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
  return {
    run,
    fields: (names, ...args) => {
      const out = run(
        ...args,
        '-T',
        'fields',
        '-E',
        'separator=|',
        ...names.flatMap((n) => ['-e', n]),
      ).trim();
      return out === '' ? [] : out.split('\n').map((l) => l.split('|'));
    },
  };
}
