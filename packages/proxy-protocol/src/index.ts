export { encodeProxyHeader } from './codec.js';
export { decodeProxyHeader, ProxyProtocolParser, type ParseResult, type ParserOptions } from './parser.js';
export { decodeV1, encodeV1 } from './v1.js';
export { decodeV2, encodeV2 } from './v2.js';
export { crc32c } from './crc32c.js';
export {
  PP2_CLIENT,
  PP2_SUBTYPE_SSL,
  PP2_TYPE,
  PP2_TYPE_CUSTOM,
  PP2_TYPE_EXPERIMENT,
  UNIQUE_ID_MAX_LENGTH,
  V1_MAX_LENGTH,
  V2_MAX_LENGTH,
  V2_SIGNATURE,
} from './constants.js';
export {
  ProxyProtocolError,
  ProxyProtocolErrorCodes,
  isProxyProtocolError,
  type ProxyProtocolErrorCode,
} from './errors.js';
export {
  isInetEndpoint,
  type InetEndpoint,
  type ProxyCommand,
  type ProxyEndpoint,
  type ProxyFamily,
  type ProxyHeader,
  type ProxyHeaderInput,
  type ProxyTlv,
  type ProxyTlvFields,
  type ProxyTransport,
  type SslInfo,
  type UnixEndpoint,
} from './types.js';
export {
  acceptProxyProtocol,
  proxyHeaderOf,
  PROXY_PROTOCOL_ERROR,
  type AcceptProxyProtocolOptions,
} from './server.js';
export {
  createHeaderEncoder,
  proxyHeaderFor,
  proxyProtocolSettings,
  type ConnectionEndpoints,
  type CustomTlvSetting,
  type ProxyProtocolSettings,
} from './settings.js';
export { proxyProtocolPassthrough, type ProxyProtocolOptions } from './plugin.js';
export { proxyProtocolPassthrough as default } from './plugin.js';
