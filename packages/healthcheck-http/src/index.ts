export { http as default, http, httpProbe, parseStatusRanges, type HttpOptions } from './http.js';
export { ResponseReader, type ResponseExpectations } from './response.js';
