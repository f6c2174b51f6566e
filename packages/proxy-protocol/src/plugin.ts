import { ConfigError, definePassthrough, type ConfigIssue } from '@fulcrum/kernel';
import { PP2_TYPE_CUSTOM } from './constants.js';
import type { ProxyProtocolSettings } from './settings.js';

export interface ProxyProtocolOptions {
  version: 1 | 2;
  tlvs: ProxyProtocolSettings['tlvs'];
}

const TLV_STRING = { type: 'string', maxLength: 4096 };

/**
 * The `proxy-protocol` passthrough: the dataplane writes a PROXY header carrying the client's
 * address to the real server before any client byte (TCP) or in front of each datagram (UDP).
 */
export const proxyProtocolPassthrough = definePassthrough<ProxyProtocolOptions>({
  name: 'proxy-protocol',
  kernel: '^0.1.0',
  description: 'Client address to the real server in a PROXY protocol v1/v2 header',
  requires: ['proxy-protocol'],
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      version: { enum: [1, 2], default: 2, description: 'PROXY protocol version; UDP needs 2' },
      tlvs: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'v2 TLVs to add to every header',
        properties: {
          uniqueId: {
            type: 'boolean',
            default: false,
            description: "PP2_TYPE_UNIQUE_ID with the dataplane's connection id",
          },
          crc32c: { type: 'boolean', default: false, description: 'PP2_TYPE_CRC32C checksum of the header' },
          authority: { ...TLV_STRING, description: 'PP2_TYPE_AUTHORITY (host name)' },
          alpn: { ...TLV_STRING, description: 'PP2_TYPE_ALPN, e.g. "h2"' },
          netns: { ...TLV_STRING, description: 'PP2_TYPE_NETNS (network namespace name)' },
          custom: {
            type: 'array',
            default: [],
            maxItems: 64,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['type', 'value'],
              properties: {
                type: { type: 'integer', minimum: PP2_TYPE_CUSTOM.MIN, maximum: PP2_TYPE_CUSTOM.MAX },
                value: TLV_STRING,
                encoding: { enum: ['utf8', 'hex', 'base64'], default: 'utf8' },
              },
            },
          },
        },
      },
    },
  },
  create(ctx, options) {
    const issues: ConfigIssue[] = [];
    const t = options.tlvs;
    if (options.version === 1) {
      if (ctx.service?.protocol === 'udp') {
        issues.push({
          path: `${ctx.configPath}.options.version`,
          message: 'PROXY protocol v1 describes TCP only; a UDP service needs version 2',
        });
      }
      if (
        t.uniqueId ||
        t.crc32c ||
        t.authority !== undefined ||
        t.alpn !== undefined ||
        t.netns !== undefined ||
        t.custom.length
      ) {
        issues.push({
          path: `${ctx.configPath}.options.tlvs`,
          message: 'TLVs exist only in PROXY protocol v2: set version: 2 or remove tlvs',
        });
      }
    }
    for (const [i, c] of t.custom.entries()) {
      if (c.encoding === 'hex' && !/^(?:[0-9a-fA-F]{2})*$/.test(c.value)) {
        issues.push({
          path: `${ctx.configPath}.options.tlvs.custom[${i}].value`,
          message: 'must be an even number of hex digits',
        });
      }
    }
    if (issues.length) throw new ConfigError(issues);
    const settings: ProxyProtocolSettings = { version: options.version, tlvs: structuredClone(t) };
    return { settings: settings as unknown as Record<string, unknown> };
  },
});
