import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKernel } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { importKeepalived, KeepalivedParseError, parseKeepalived, splitCommand } from '../index.js';

describe('parser', () => {
  it('reads blocks, comments (! and #, also trailing), quotes, and braces on their own line', () => {
    const nodes = parseKeepalived(`! header
virtual_server 10.0.0.1 80   # trailing
{
    misc_path "/bin/check arg 'x y'" ! trailing too
    real_server 10.0.0.2 80 { weight 2 }
}
`);
    expect(nodes).toEqual([
      {
        words: ['virtual_server', '10.0.0.1', '80'],
        line: 2,
        children: [
          { words: ['misc_path', "/bin/check arg 'x y'"], line: 4 },
          {
            words: ['real_server', '10.0.0.2', '80'],
            line: 5,
            children: [{ words: ['weight', '2'], line: 5 }],
          },
        ],
      },
    ]);
  });

  it('refuses unbalanced braces with the line', () => {
    expect(() => parseKeepalived('a {\n b {\n}\n')).toThrow(KeepalivedParseError);
    expect(() => parseKeepalived('a {\n b {\n}\n')).toThrow(/line 1: "\{" is never closed/);
    expect(() => parseKeepalived('a\n}\n')).toThrow(/line 2: "\}" without a matching "\{"/);
  });

  it('keeps @conditional lines only for the matching instance', () => {
    const text = '@high a 1\n@low a 2\n@^high a 3\nb\n';
    expect(parseKeepalived(text, { instance: 'high' }).map((n) => n.words.join(' '))).toEqual(['a 1', 'b']);
    expect(parseKeepalived(text, { instance: 'low' }).map((n) => n.words.join(' '))).toEqual([
      'a 2',
      'a 3',
      'b',
    ]);
    const skipped: string[] = [];
    parseKeepalived(text, { onConditional: (line, c) => skipped.push(`${line} ${c}`) });
    expect(skipped).toEqual(['1 @high', '2 @low', '3 @^high']);
  });

  it('splits commands like a shell would, without running one', () => {
    expect(splitCommand(`/bin/x a 'b c' "d e"`)).toEqual(['/bin/x', 'a', 'b c', 'd e']);
  });
});

describe('translation', () => {
  const { config, notes, translated } = importKeepalived(`global_defs { router_id X }
vrrp_instance VI_1 { state MASTER }
virtual_server 192.0.2.10 443 {
  delay_loop 4
  lb_algo wrr
  lb_kind DR
  protocol TCP
  persistence_timeout 120
  virtualhost www.example.org
  alpha
  quorum 3
  hysteresis 1
  quorum_up "/usr/local/bin/q up"
  quorum_down /usr/local/bin/q down
  sorry_server 192.0.2.99 8443
  ha_suspend
  real_server 192.0.2.11 8443 {
    weight 3
    inhibit_on_failure
    notify_up /usr/local/bin/n up
    SSL_GET {
      url {
        path /health
        status_code 200 301-302
      }
      url {
        path /ready
        digest 9b3a0c85a887a256d6939da88aabd8cd
        regex "ok$"
      }
      connect_port 9443
      connect_timeout 2
      retry 2
      delay_before_retry 1
    }
    SMTP_CHECK { }
  }
  real_server 192.0.2.12 8443 {
    weight 1
    notify_up /usr/local/bin/n up
    SSL_GET {
      url {
        path /health
        status_code 200 301-302
      }
      url {
        path /ready
        digest 9b3a0c85a887a256d6939da88aabd8cd
        regex "ok$"
      }
      connect_port 9443
      connect_timeout 2
      retry 2
      delay_before_retry 1
    }
  }
}
virtual_server 2001:db8::1 53 {
  lb_algo dh
  protocol UDP
  real_server 2001:db8::2 53 {
    MISC_CHECK {
      misc_path "/usr/local/bin/dns-check --name 'a b'"
      misc_timeout 5
      misc_dynamic
      user nobody
    }
  }
}
virtual_server fwmark 7 { lb_algo rr }
virtual_server 192.0.2.20 25 { protocol SCTP }
`);

  it('translates each virtual_server into a service', () => {
    expect(translated).toBe(2);
    expect(config.dataplane).toBe('socket');
    expect(config.services![0]).toEqual({
      name: 'tcp-192.0.2.10-443',
      listen: '192.0.2.10:443',
      protocol: 'tcp',
      scheduler: 'wrr',
      persistence: { timeout: 120 },
      quorum: 3,
      hysteresis: 1,
      sorryServer: '192.0.2.99:8443',
      notify: {
        quorumUp: ['/usr/local/bin/q', 'up'],
        quorumDown: ['/usr/local/bin/q', 'down'],
        up: ['/usr/local/bin/n', 'up'],
      },
      realServers: [
        { address: '192.0.2.11:8443', weight: 3 },
        { address: '192.0.2.12:8443', weight: 1 },
      ],
      healthChecks: [
        {
          name: 'http',
          options: {
            port: 9443,
            interval: 4,
            timeout: 2,
            retries: 2,
            retryDelay: 1,
            initialState: 'down',
            tls: true,
            host: 'www.example.org',
            path: '/health',
            status: ['200', '301-302'],
          },
        },
        {
          name: 'http',
          options: {
            port: 9443,
            interval: 4,
            timeout: 2,
            retries: 2,
            retryDelay: 1,
            initialState: 'down',
            tls: true,
            host: 'www.example.org',
            path: '/ready',
            digest: '9b3a0c85a887a256d6939da88aabd8cd',
            bodyRegex: 'ok$',
          },
        },
      ],
      onFailure: 'inhibit',
    });
    expect(config.services![1]).toMatchObject({
      name: 'udp-2001_db8__1-53',
      listen: '[2001:db8::1]:53',
      protocol: 'udp',
      scheduler: 'wlc',
      onFailure: 'remove',
      healthChecks: [
        {
          name: 'script',
          options: { path: '/usr/local/bin/dns-check', args: ['--name', 'a b'], timeout: 5, dynamic: true },
        },
      ],
    });
  });

  it('reports everything it did not carry over exactly, with its line', () => {
    expect(notes.map((n) => `${n.line} ${n.kind} ${n.subject}`)).toEqual([
      '1 not-translated global_defs',
      '2 not-translated vrrp_instance VI_1',
      '3 approximated virtual_server 192.0.2.10 443', // inhibit on one server only
      '6 approximated lb_kind DR',
      '16 not-translated ha_suspend',
      '36 not-translated SMTP_CHECK',
      '59 approximated lb_algo dh',
      '66 not-translated user nobody',
      '70 not-translated virtual_server fwmark 7',
      '71 not-translated virtual_server 192.0.2.20 25',
    ]);
    expect(notes.find((n) => n.subject === 'lb_algo dh')!.message).toMatch(/wlc is used instead/);
    expect(notes.find((n) => n.line === 3)!.message).toMatch(
      /inhibit_on_failure is set on some real servers only/,
    );
  });

  it('produces YAML that parses back to the same configuration', async () => {
    const { yaml } = importKeepalived('virtual_server 10.0.0.1 80 { real_server 10.0.0.2 80 { weight 2 } }');
    const { parse } = await import('yaml');
    expect(parse(yaml)).toEqual(
      importKeepalived('virtual_server 10.0.0.1 80 { real_server 10.0.0.2 80 { weight 2 } }').config,
    );
  });
});

const samples = '/usr/share/doc/keepalived/samples';
const need = requires({
  check: () =>
    existsSync(samples) ? undefined : `needs Debian's keepalived package (its samples in ${samples})`,
});

describe.skipIf(need.skip)(`the samples Debian's keepalived ships${need.note}`, () => {
  const files = need.skip ? [] : readdirSync(samples).filter((f) => f.startsWith('keepalived.conf.'));

  it('has the samples the issue names', () => {
    for (const f of [
      'HTTP_GET.port',
      'SSL_GET',
      'misc_check',
      'inhibit',
      'quorum',
      'virtualhost',
      'status_code',
    ])
      expect(files).toContain(`keepalived.conf.${f}`);
  });

  it.each(files.map((f) => [f]))(
    '%s: every block translated or reported, and the result is a valid Fulcrum config',
    async (file) => {
      const text = readFileSync(join(samples, file), 'utf8');
      const result = importKeepalived(text);
      const top = parseKeepalived(text);
      for (const node of top) {
        const isTranslatedVs =
          node.words[0] === 'virtual_server' &&
          result.config.services!.some((s) =>
            s.listen.startsWith(node.words[1]!.includes(':') ? `[${node.words[1]}]` : node.words[1]!),
          );
        const reported = result.notes.some((n) => n.line === node.line);
        expect(isTranslatedVs || reported, `${file}:${node.line} ${node.words.join(' ')}`).toBe(true);
      }
      // The real plugins judge the output: schedulers, health checks and the socket dataplane.
      const kernel = createKernel();
      await expect(kernel.validate(result.config)).resolves.toBeTruthy();
    },
  );
});
