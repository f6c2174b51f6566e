export { tcp as default, tcp, tcpProbe, type TcpOptions } from './tcp.js';
