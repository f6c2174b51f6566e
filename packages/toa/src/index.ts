export {
  decodeToa,
  encodeToa,
  TCP_OPTION_TOA,
  TOA_IPV4_LENGTH,
  TOA_IPV6_LENGTH,
  type ToaAddress,
} from './toa.js';
export {
  findToa,
  insertToa,
  parseTcpOptions,
  tcpOption,
  TCP_MAX_OPTIONS_LENGTH,
  TCP_OPTION,
  type InsertToaOptions,
  type TcpOption,
} from './tcp-options.js';
export { insertToaIntoSegment, readToaFromSegment, tcpChecksum, type PseudoHeader } from './segment.js';
export { ToaError, ToaErrorCodes, type ToaErrorCode } from './errors.js';
export { toaPassthrough, type ToaOptions, type ToaSettings } from './plugin.js';
export { toaPassthrough as default } from './plugin.js';
